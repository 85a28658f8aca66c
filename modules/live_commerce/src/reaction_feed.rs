//! What a session's viewers are told about reactions, paced. The seed broadcasts `new-reaction` and
//! `reaction-stats` after every reaction; a popular stream takes thousands of reactions a second from
//! thousands of viewers, and each broadcast reaches every viewer: with reactions growing with the audience,
//! that work grows with its square. A session's feed therefore keeps two bounds:
//!
//! - `reaction-stats` goes out at once after a reaction, unless one went out less than [`STATS_EVERY`]
//!   ago; then one goes out [`STATS_EVERY`] after that one, with the totals as they are by then. So every
//!   reaction is in a `reaction-stats` within [`STATS_EVERY`], and a quiet session (reactions further
//!   apart than that) sees one per reaction, exactly as the seed's server sends them.
//! - `new-reaction` (one reaction, for its animation) goes out for at most [`ANIMATIONS_PER_WINDOW`]
//!   reactions of each [`STATS_EVERY`] window; the others are in the totals but not animated one by one.
//!   A reaction whose stats wait for the timer has its `new-reaction` wait too, and the timer sends them
//!   just before the stats: a busy session's viewers get one batch per tick, which their connections
//!   write at once, rather than the animations and the stats in separate writes.
//!
//! The pacing runs on tokio's clock.

use std::time::Duration;
use tokio::time::Instant;

/// Shortest time between two `reaction-stats` of one session.
pub const STATS_EVERY: Duration = Duration::from_millis(50);

/// Most `new-reaction` events of one session per [`STATS_EVERY`] window (200 a second).
pub const ANIMATIONS_PER_WINDOW: u32 = 10;

/// When a reaction's `reaction-stats` goes out.
#[derive(Debug, PartialEq, Eq)]
pub enum StatsDue {
    /// Now, by the caller.
    Now,
    /// At this instant, by a timer the caller starts (after it, call [`ReactionFeed::sent_later`]).
    At(Instant),
    /// With the one a timer already waits to send.
    Scheduled,
}

/// What to tell viewers about one reaction.
#[derive(Debug, PartialEq, Eq)]
pub struct Tell {
    /// Whether to publish its `new-reaction` now. An animated reaction whose stats wait for the timer is
    /// not: its animation is held for the timer.
    pub animate_now: bool,
    /// When its `reaction-stats` goes out.
    pub stats: StatsDue,
}

/// A `new-reaction` waiting for the stats timer: the reaction's type and when it was made (ms since the
/// epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The reaction type.
    pub kind: String,
    /// When it was counted.
    pub at_ms: u64,
}

#[derive(Default)]
struct Pace {
    /// Start of the current animation window.
    window: Option<Instant>,
    /// `new-reaction` events sent in it.
    animations: u32,
    /// When the last `reaction-stats` went out.
    last_stats: Option<Instant>,
    /// A timer waits to send the next one.
    scheduled: bool,
    /// Animations waiting for that timer.
    held: Vec<Held>,
}

/// A session's reaction pacing.
#[derive(Default)]
pub struct ReactionFeed {
    pace: parking_lot::Mutex<Pace>,
}

impl ReactionFeed {
    /// A reaction was counted at `now`: what to tell its viewers. `animation` makes its `new-reaction`,
    /// called only when it is animated but must wait for the timer.
    pub fn reacted(&self, now: Instant, animation: impl FnOnce() -> Held) -> Tell {
        let mut pace = self.pace.lock();
        if pace.window.is_none_or(|start| now.duration_since(start) >= STATS_EVERY) {
            pace.window = Some(now);
            pace.animations = 0;
        }
        let animate = pace.animations < ANIMATIONS_PER_WINDOW;
        if animate {
            pace.animations += 1;
        }
        let stats = if pace.scheduled {
            StatsDue::Scheduled
        } else {
            match pace.last_stats {
                Some(last) if now.duration_since(last) < STATS_EVERY => {
                    pace.scheduled = true;
                    StatsDue::At(last + STATS_EVERY)
                }
                _ => {
                    pace.last_stats = Some(now);
                    StatsDue::Now
                }
            }
        };
        let animate_now = animate && stats == StatsDue::Now;
        if animate && !animate_now {
            pace.held.push(animation());
        }
        Tell { animate_now, stats }
    }

    /// The timer of a [`StatsDue::At`] fired at `now`: returns the animations held for it, in the order
    /// held, to publish before the totals; the caller reads the totals after this call, so every reaction
    /// told [`StatsDue::Scheduled`] is in them.
    pub fn sent_later(&self, now: Instant) -> Vec<Held> {
        let mut pace = self.pace.lock();
        pace.scheduled = false;
        pace.last_stats = Some(now);
        std::mem::take(&mut pace.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Held {
        Held { kind: "like".into(), at_ms: 0 }
    }

    #[test]
    fn a_quiet_session_gets_stats_and_an_animation_per_reaction() {
        let feed = ReactionFeed::default();
        let start = Instant::now();
        for i in 0..5 {
            let tell = feed.reacted(start + STATS_EVERY * i, held);
            assert_eq!(tell, Tell { animate_now: true, stats: StatsDue::Now }, "reaction {i}");
        }
    }

    #[test]
    fn a_burst_gets_one_stats_now_and_one_after_the_interval() {
        let feed = ReactionFeed::default();
        let start = Instant::now();
        assert_eq!(feed.reacted(start, held).stats, StatsDue::Now);
        let soon = start + Duration::from_millis(1);
        assert_eq!(feed.reacted(soon, held).stats, StatsDue::At(start + STATS_EVERY));
        for _ in 0..100 {
            assert_eq!(feed.reacted(soon, held).stats, StatsDue::Scheduled);
        }
        let held_back = feed.sent_later(start + STATS_EVERY);
        assert_eq!(held_back.len(), ANIMATIONS_PER_WINDOW as usize - 1, "the window's other animations");
        // The next one within the interval after the timer waits for the next timer.
        let after = start + STATS_EVERY + Duration::from_millis(10);
        assert_eq!(feed.reacted(after, held).stats, StatsDue::At(start + STATS_EVERY * 2));
        // Once the interval has passed, a reaction's stats go out at once again.
        assert_eq!(feed.sent_later(start + STATS_EVERY * 2), [held()], "animated in a new window");
        assert_eq!(feed.reacted(start + STATS_EVERY * 4, held).stats, StatsDue::Now);
    }

    #[test]
    fn animations_are_bounded_per_window() {
        let feed = ReactionFeed::default();
        let start = Instant::now();
        assert!(feed.reacted(start, held).animate_now);
        let animated = (1..100).filter(|_| !feed.reacted(start, held).animate_now).count();
        assert_eq!(animated, 99, "none more now: the stats wait for the timer");
        let waiting = feed.sent_later(start + STATS_EVERY);
        assert_eq!(waiting.len(), ANIMATIONS_PER_WINDOW as usize - 1, "the rest of the window's quota waited");
        let next_window = start + STATS_EVERY * 3;
        assert!(feed.reacted(next_window, held).animate_now, "a new window animates again");
    }

    #[test]
    fn animations_held_for_the_timer_come_back_with_it_once() {
        let feed = ReactionFeed::default();
        let start = Instant::now();
        assert_eq!(feed.reacted(start, held), Tell { animate_now: true, stats: StatsDue::Now });
        let soon = start + Duration::from_millis(1);
        let fire = || Held { kind: "fire".into(), at_ms: 1 };
        let like = || Held { kind: "like".into(), at_ms: 2 };
        assert_eq!(feed.reacted(soon, fire), Tell { animate_now: false, stats: StatsDue::At(start + STATS_EVERY) });
        assert_eq!(feed.reacted(soon, like), Tell { animate_now: false, stats: StatsDue::Scheduled });
        assert_eq!(feed.sent_later(start + STATS_EVERY), [fire(), like()]);
        assert_eq!(feed.sent_later(start + STATS_EVERY * 2), [], "taken once");
    }
}
