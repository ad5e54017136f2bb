//! Dashboard cost at 1,000,000 samples: a slider move (the threshold lookup plus whatever the
//! reducer recomputes) and a full frame at 120×40. Targets: < 1 ms and < 16 ms.

#[path = "../tests/dashboard_support/mod.rs"]
mod dashboard_support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use reason::dashboard::session::{Filter, Session};
use reason::dashboard::{draw, update, Action, App};

const N: usize = 1_000_000;

/// Alternates small threshold steps up and down, so the threshold stays put on average.
fn slide(app: &mut App, up: &mut bool) {
    let step = if *up { 0.01 } else { -0.01 };
    *up = !*up;
    update(app, Action::ThresholdBy(step));
    black_box(&app.stats);
}

fn benches(c: &mut Criterion) {
    let mut app = dashboard_support::app(
        dashboard_support::record_set(N, 1),
        Session::default(),
        120,
        40,
    );
    update(&mut app, Action::MoveBy(N as isize / 2));

    let mut group = c.benchmark_group("tui_1m");
    group.measurement_time(Duration::from_secs(4));

    group.bench_function("threshold_table_at", |b| {
        b.iter(|| black_box(app.derived.table.at(black_box(0.62))))
    });
    let mut up = true;
    group.bench_function("slider_move_filter_all", |b| {
        b.iter(|| slide(&mut app, &mut up))
    });

    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    group.bench_function("draw_120x40", |b| {
        b.iter(|| {
            terminal.draw(|frame| draw(frame, &app)).unwrap();
        })
    });

    // A threshold-dependent filter has to re-filter the million rows on every move.
    update(&mut app, Action::NextFilter);
    update(&mut app, Action::NextFilter);
    assert_eq!(app.filter, Filter::Rejected);
    group.sample_size(20);
    group.bench_function("slider_move_filter_rejected", |b| {
        b.iter(|| slide(&mut app, &mut up))
    });
    // Sorted by P(correct), the rows are visited in random memory order.
    update(&mut app, Action::NextSort);
    group.bench_function("slider_move_filter_rejected_sort_p", |b| {
        b.iter(|| slide(&mut app, &mut up))
    });
    group.finish();
}

criterion_group! {
    name = tui;
    // Plots need system fonts, which headless GPU boxes often lack; the numbers are printed.
    config = Criterion::default().without_plots();
    targets = benches
}
criterion_main!(tui);
