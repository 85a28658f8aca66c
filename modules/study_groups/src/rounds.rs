//! The rounds state machine, exactly the seed's order: `PENDING → VOTING → DISCUSSING → REVOTING →
//! EXPLAINING → DONE`. `PENDING` is where a round waits before the facilitator opens its vote (the seed's
//! `round.advanced` can announce `VOTING`, so something precedes it). No other transition exists.

use serde::{Deserialize, Serialize};

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoundStatus {
    /// Not opened yet.
    Pending,
    /// Everyone votes (`PI_VOTE_SUBMIT`).
    Voting,
    /// The group discusses; no activity events.
    Discussing,
    /// Those who voted may vote again (`PI_REVOTE_SUBMIT`).
    Revoting,
    /// The scribe writes the group's explanation (`GROUP_EXPLANATION_SUBMIT`).
    Explaining,
    /// Closed.
    Done,
}

impl RoundStatus {
    /// The status a round advances to, if any.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Pending => Some(Self::Voting),
            Self::Voting => Some(Self::Discussing),
            Self::Discussing => Some(Self::Revoting),
            Self::Revoting => Some(Self::Explaining),
            Self::Explaining => Some(Self::Done),
            Self::Done => None,
        }
    }

    /// The wire name (`"VOTING"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Voting => "VOTING",
            Self::Discussing => "DISCUSSING",
            Self::Revoting => "REVOTING",
            Self::Explaining => "EXPLAINING",
            Self::Done => "DONE",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Voting, Self::Discussing, Self::Revoting, Self::Explaining, Self::Done]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::RoundStatus::*;
    use super::*;

    #[test]
    fn only_the_seed_order_is_legal() {
        let order = [Pending, Voting, Discussing, Revoting, Explaining, Done];
        for (i, from) in order.iter().enumerate() {
            for (j, to) in order.iter().enumerate() {
                assert_eq!(from.next() == Some(*to), j == i + 1, "{from:?} -> {to:?}");
            }
            assert_eq!(RoundStatus::parse(from.as_str()), Some(*from));
        }
        assert_eq!(Done.next(), None);
        assert_eq!(RoundStatus::parse("voting"), None);
    }
}
