#!/usr/bin/env python3
"""Drive `reason tui` in a pseudo-terminal and check that it starts, scores and quits.

    gpu_tui_pty.py [--expect cuda:0] [--timeout 120] [--screen FILE] -- BINARY ARGS...

Starts BINARY ARGS in a 120x40 pseudo-terminal (TERM=xterm-256color), keeps a small screen
model of what it draws (cursor moves, erases and text; colours are ignored), and checks:
the title row names the expected device, the scoring progresses (the title's gauge or the
sample count changes) until it finishes or the timeout passes, `q` quits, and the exit code
is 0. Prints one JSON object; exits 0 only when every check passed. Standard library only.
"""

import argparse
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import fcntl
import time

ROWS, COLS = 40, 120
CSI = re.compile(rb"\x1b\[([0-9;?<=>]*)([ -/]*)([@-~])")


class Screen:
    """Just enough of a VT100 for ratatui's crossterm backend."""

    def __init__(self, rows, cols):
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.y = self.x = 0
        self.pending = b""

    def feed(self, data):
        data = self.pending + data
        self.pending = b""
        i = 0
        while i < len(data):
            b = data[i]
            if b == 0x1B:
                if i + 1 >= len(data):
                    self.pending = data[i:]
                    return
                nxt = data[i + 1]
                if nxt == ord("["):
                    m = CSI.match(data, i)
                    if not m:
                        self.pending = data[i:]
                        return
                    self.csi(m.group(1).decode(), m.group(3).decode())
                    i = m.end()
                    continue
                if nxt == ord("]"):  # OSC ... BEL or ST
                    end = min(
                        (p for p in (data.find(b"\x07", i), data.find(b"\x1b\\", i)) if p >= 0),
                        default=-1,
                    )
                    if end < 0:
                        self.pending = data[i:]
                        return
                    i = end + (1 if data[end] == 0x07 else 2)
                    continue
                i += 2  # other two-byte escapes (ESC 7, ESC 8, ESC =, ...)
                continue
            if b == 0x0D:
                self.x = 0
                i += 1
                continue
            if b == 0x0A:
                self.y = min(self.y + 1, self.rows - 1)
                i += 1
                continue
            if b < 0x20:
                i += 1
                continue
            # One UTF-8 character.
            n = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4
            if i + n > len(data):
                self.pending = data[i:]
                return
            ch = data[i : i + n].decode("utf-8", "replace")
            if 0 <= self.y < self.rows and 0 <= self.x < self.cols:
                self.grid[self.y][self.x] = ch
            self.x += 1
            i += n

    def csi(self, params, final):
        nums = [int(p) if p.isdigit() else 0 for p in params.lstrip("?").split(";")] if params else []
        if final in "Hf":
            row = nums[0] if nums and nums[0] else 1
            col = nums[1] if len(nums) > 1 and nums[1] else 1
            self.y, self.x = min(row, self.rows) - 1, min(col, self.cols) - 1
        elif final == "J" and (nums[:1] == [2] or nums[:1] == [3]):
            self.grid = [[" "] * self.cols for _ in range(self.rows)]
        elif final == "J":
            for y in range(self.y, self.rows):
                for x in range(self.x if y == self.y else 0, self.cols):
                    self.grid[y][x] = " "
        elif final == "K":
            for x in range(self.x, self.cols):
                self.grid[self.y][x] = " "
        elif final == "G":
            self.x = (nums[0] if nums and nums[0] else 1) - 1
        elif final == "C":
            self.x += nums[0] if nums and nums[0] else 1
        elif final == "D":
            self.x -= nums[0] if nums and nums[0] else 1

    def row(self, y):
        return "".join(self.grid[y]).rstrip()

    def text(self):
        return "\n".join(self.row(y) for y in range(self.rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", default="cuda:0", help="text the title row must show")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for scoring")
    parser.add_argument("--screen", help="write the last screen here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
    started = time.monotonic()
    errors = tempfile.TemporaryFile()
    child = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=errors, env=env, start_new_session=True
    )
    os.close(slave)
    screen = Screen(ROWS, COLS)
    titles = []  # distinct title rows, in order
    result = {"command": command, "expect": args.expect}

    def pump(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], max(0.0, min(0.1, end - time.monotonic())))
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                screen.feed(data)
                title = screen.row(0)
                if title and (not titles or titles[-1] != title):
                    titles.append(title)
            elif child.poll() is not None:
                return False
        return True

    def finished(title):
        # The gauge is gone and the title shows the samples: the scoring worker is done.
        return re.search(r"· \d+ samples", title) and "scored" not in title and "starting" not in title

    alive = True
    first_seen = None
    while alive and time.monotonic() - started < args.timeout:
        alive = pump(0.25)
        if first_seen is None and titles and args.expect in titles[-1]:
            first_seen = round(time.monotonic() - started, 2)
        if titles and first_seen is not None and finished(titles[-1]):
            break
        if "scoring failed" in screen.text():
            break
    scoring_seconds = round(time.monotonic() - started, 2)
    result["seconds_to_title"] = first_seen
    result["seconds_scoring"] = scoring_seconds
    result["title_first"] = titles[0] if titles else ""
    result["title_last"] = titles[-1] if titles else ""
    result["title_changes"] = len(titles)
    counts = [int(m.group(1)) for t in titles for m in [re.search(r"(\d+) scored", t)] if m]
    distinct = sorted(set(counts))
    result["scored_counts"] = distinct if len(distinct) <= 8 else distinct[:4] + distinct[-4:]
    result["saw_device"] = any(args.expect in t for t in titles)
    result["scoring_failed"] = "scoring failed" in screen.text()
    result["scoring_finished"] = bool(titles and finished(titles[-1]))
    result["progressed"] = len(set(counts)) > 1 or result["scoring_finished"]

    quit_started = time.monotonic()
    if child.poll() is None:
        os.write(master, b"q")
        deadline = time.monotonic() + 20
        while child.poll() is None and time.monotonic() < deadline:
            pump(0.1)
    if child.poll() is None:
        result["killed"] = True
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    result["quit_seconds"] = round(time.monotonic() - quit_started, 2)
    result["exit_code"] = child.returncode
    errors.seek(0)
    stderr = errors.read().decode("utf-8", "replace")
    result["stderr_tail"] = stderr[-600:]
    result["panicked"] = "panicked" in stderr
    if args.screen:
        with open(args.screen, "w") as f:
            f.write(screen.text() + "\n")
    result["ok"] = bool(
        result["saw_device"]
        and result["progressed"]
        and not result["scoring_failed"]
        and result["exit_code"] == 0
        and not result["panicked"]
    )
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
