//! Terminal set-up and restore. The terminal is restored however the dashboard ends: normal
//! return, error (the guard's `Drop`), or a panic on the UI thread (the panic hook, before
//! the message is printed, so it lands on the normal screen).

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::thread::{self, ThreadId};

use crossterm::cursor::{Hide, Show};
use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// Whether the terminal is currently in dashboard mode (raw, alternate screen, mouse).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The thread that owns the terminal; only its panics restore it (a worker's panic is
/// reported by the dashboard instead).
static UI_THREAD: Mutex<Option<ThreadId>> = Mutex::new(None);
static HOOK: Once = Once::new();

pub type Backend = CrosstermBackend<Stdout>;

/// Owns the terminal in dashboard mode; dropping it restores the terminal.
pub struct TerminalGuard {
    /// Always `Some` until dropped (ratatui's own drop runs before the restore, so leaving the
    /// alternate screen and showing the cursor are the last things written).
    terminal: Option<Terminal<Backend>>,
}

impl TerminalGuard {
    /// Raw mode, alternate screen, mouse capture, hidden cursor.
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread::current().id());
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let entered = execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(TerminalGuard {
                terminal: Some(terminal),
            }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<Backend> {
        self.terminal
            .as_mut()
            .expect("the terminal lives as long as the guard")
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        drop(self.terminal.take());
        restore();
    }
}

/// Leaves dashboard mode; does nothing when not in it (so the hook and `Drop` can both call it).
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(
            io::stdout(),
            DisableMouseCapture,
            LeaveAlternateScreen,
            Show
        );
        let _ = disable_raw_mode();
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let on_ui_thread = *UI_THREAD.lock().unwrap_or_else(|e| e.into_inner())
                == Some(thread::current().id());
            if on_ui_thread {
                restore();
            }
            previous(info);
        }));
    });
}
