//! Where each widget goes, as a pure function of the terminal size. Drawing, mouse hit-testing
//! and the reducer (page size, preview size) all use this one layout.

use ratatui::layout::{Constraint, Layout, Rect};

/// What the side panel of the compact layout shows (Tab switches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SidePanel {
    /// Preview and details of the selected sample.
    #[default]
    Inspect,
    /// Meta-vector sparklines.
    Meta,
    /// Risk–coverage chart and P(correct) histogram.
    Charts,
    /// The nearest training images of the selected sample (at every size: in place of the
    /// meta-vector row on a full screen).
    Neighbours,
}

impl SidePanel {
    pub fn next(self) -> SidePanel {
        match self {
            SidePanel::Inspect => SidePanel::Meta,
            SidePanel::Meta => SidePanel::Charts,
            SidePanel::Charts => SidePanel::Neighbours,
            SidePanel::Neighbours => SidePanel::Inspect,
        }
    }
}

/// Smallest terminal the dashboard draws in; below it a message says so.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// From this size on, every panel is on screen at once; below it the side panel switches.
pub const FULL_WIDTH: u16 = 120;
pub const FULL_HEIGHT: u16 = 36;

/// Width of the `t 0.620 ` label in front of the slider track.
const SLIDER_LABEL: u16 = 8;

/// Rectangles of every panel. A panel not on screen has an empty rectangle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Screen {
    pub title: Rect,
    pub list: Rect,
    pub preview: Rect,
    pub details: Rect,
    pub meta: Rect,
    pub risk: Rect,
    pub histogram: Rect,
    pub threshold: Rect,
    pub status: Rect,
    pub neighbours: Rect,
    /// Below the full size: one side panel at a time (Tab switches).
    pub compact: bool,
}

impl Screen {
    /// The layout for `area`, or `None` when it is below the minimum size.
    pub fn compute(area: Rect, panel: SidePanel) -> Option<Screen> {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            return None;
        }
        if area.width >= FULL_WIDTH && area.height >= FULL_HEIGHT {
            let mut screen = Self::full(area);
            if panel == SidePanel::Neighbours {
                screen.with_neighbours_row();
            }
            Some(screen)
        } else {
            Some(Self::compact(area, panel))
        }
    }

    fn full(area: Rect) -> Screen {
        let [title, main, meta, bottom, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(10),
            Constraint::Length(1),
        ])
        .areas(area);
        let [list, preview, details] = Layout::horizontal([
            Constraint::Percentage(46),
            Constraint::Percentage(24),
            Constraint::Percentage(30),
        ])
        .areas(main);
        let [threshold, risk, histogram] = Layout::horizontal([
            Constraint::Percentage(38),
            Constraint::Percentage(31),
            Constraint::Percentage(31),
        ])
        .areas(bottom);
        Screen {
            title,
            list,
            preview,
            details,
            meta,
            risk,
            histogram,
            threshold,
            status,
            compact: false,
            neighbours: Rect::default(),
        }
    }

    /// The neighbours strip in place of the meta-vector row, taller, taken from the main row.
    fn with_neighbours_row(&mut self) {
        const HEIGHT: u16 = 10;
        let grow = HEIGHT.saturating_sub(self.meta.height);
        let main_height = self.list.height.saturating_sub(grow);
        for panel in [&mut self.list, &mut self.preview, &mut self.details] {
            panel.height = main_height;
        }
        self.neighbours = Rect {
            y: self.meta.y - grow,
            height: self.meta.height + grow,
            ..self.meta
        };
        self.meta = Rect::default();
    }

    fn compact(area: Rect, panel: SidePanel) -> Screen {
        let [title, main, threshold, status] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(5),
            Constraint::Length(1),
        ])
        .areas(area);
        let [list, side] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(main);
        let mut screen = Screen {
            title,
            list,
            threshold,
            status,
            compact: true,
            ..Screen::default()
        };
        match panel {
            SidePanel::Inspect => {
                // The details need about 11 rows; the preview gets the rest (at least 4).
                let details_height = (side.height * 3 / 5)
                    .max(11)
                    .min(side.height.saturating_sub(4));
                let [preview, details] =
                    Layout::vertical([Constraint::Fill(1), Constraint::Length(details_height)])
                        .areas(side);
                screen.preview = preview;
                screen.details = details;
            }
            SidePanel::Meta => screen.meta = side,
            SidePanel::Neighbours => screen.neighbours = side,
            SidePanel::Charts => {
                let [risk, histogram] =
                    Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                        .areas(side);
                screen.risk = risk;
                screen.histogram = histogram;
            }
        }
        screen
    }

    /// The list rows below the border and the header line.
    pub fn list_body(&self) -> Rect {
        let inner = inner(self.list);
        Rect {
            y: inner.y.saturating_add(1),
            height: inner.height.saturating_sub(1),
            ..inner
        }
    }

    /// Number of sample rows the list shows.
    pub fn list_rows(&self) -> usize {
        self.list_body().height as usize
    }

    /// Where the image goes inside the preview panel.
    pub fn preview_image(&self) -> Rect {
        inner(self.preview)
    }

    /// The slider's track: the first line of the threshold panel after the `t 0.620 ` label.
    pub fn slider_track(&self) -> Rect {
        let inner = inner(self.threshold);
        Rect {
            x: inner.x.saturating_add(SLIDER_LABEL),
            y: inner.y,
            width: inner.width.saturating_sub(SLIDER_LABEL),
            height: inner.height.min(1),
        }
    }
}

/// The area inside a one-cell border.
pub fn inner(area: Rect) -> Rect {
    Rect {
        x: area.x.saturating_add(1),
        y: area.y.saturating_add(1),
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(2),
    }
}

/// Threshold for a column of the slider track (its ends are 0 and 1).
pub fn threshold_at_column(track: Rect, column: u16) -> Option<f32> {
    if track.width < 2 {
        return None;
    }
    let offset = column.clamp(track.x, track.x + track.width - 1) - track.x;
    Some(offset as f32 / (track.width - 1) as f32)
}

/// Column of the slider's knob for a threshold.
pub fn column_of_threshold(track: Rect, threshold: f32) -> u16 {
    if track.width < 2 {
        return track.x;
    }
    let t = if threshold.is_nan() {
        0.0
    } else {
        threshold.clamp(0.0, 1.0)
    };
    track.x + (t * (track.width - 1) as f32).round() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_small_has_no_layout() {
        assert!(Screen::compute(Rect::new(0, 0, 79, 40), SidePanel::Inspect).is_none());
        assert!(Screen::compute(Rect::new(0, 0, 200, 23), SidePanel::Inspect).is_none());
    }

    #[test]
    fn full_layout_shows_every_panel() {
        let s = Screen::compute(Rect::new(0, 0, 120, 40), SidePanel::Inspect).unwrap();
        assert!(!s.compact);
        for r in [
            s.list,
            s.preview,
            s.details,
            s.meta,
            s.risk,
            s.histogram,
            s.threshold,
        ] {
            assert!(r.width > 0 && r.height > 0, "{r:?}");
        }
        assert_eq!(s.status.y, 39);
    }

    #[test]
    fn compact_layout_switches_the_side_panel() {
        let area = Rect::new(0, 0, 80, 24);
        let a = Screen::compute(area, SidePanel::Inspect).unwrap();
        assert!(a.compact && a.preview.height >= 4 && a.details.height >= 11);
        assert_eq!(a.meta, Rect::default());
        let b = Screen::compute(area, SidePanel::Meta).unwrap();
        assert!(b.meta.width > 0 && b.preview.width == 0);
        let c = Screen::compute(area, SidePanel::Charts).unwrap();
        assert!(c.risk.height > 0 && c.histogram.height > 0);
        let d = Screen::compute(area, SidePanel::Neighbours).unwrap();
        assert!(d.neighbours.width > 0 && d.preview.width == 0 && d.meta.width == 0);
        assert_eq!(SidePanel::Charts.next(), SidePanel::Neighbours);
    }

    #[test]
    fn the_full_screen_trades_the_meta_row_for_a_taller_neighbours_strip() {
        let area = Rect::new(0, 0, 120, 40);
        let plain = Screen::compute(area, SidePanel::Inspect).unwrap();
        let s = Screen::compute(area, SidePanel::Neighbours).unwrap();
        assert_eq!(s.meta, Rect::default());
        assert_eq!(s.neighbours.height, 10);
        assert_eq!(s.neighbours.bottom(), plain.meta.bottom());
        assert_eq!(s.list.bottom(), s.neighbours.y);
        assert!(s.preview.height > 10 && s.threshold == plain.threshold);
    }

    #[test]
    fn slider_columns_round_trip() {
        let track = Rect::new(10, 5, 51, 1);
        assert_eq!(threshold_at_column(track, 10), Some(0.0));
        assert_eq!(threshold_at_column(track, 60), Some(1.0));
        assert_eq!(threshold_at_column(track, 0), Some(0.0));
        assert_eq!(threshold_at_column(track, 99), Some(1.0));
        assert_eq!(column_of_threshold(track, 0.5), 35);
        assert_eq!(threshold_at_column(track, 35), Some(0.5));
    }
}
