//! What a start does about snapshots, from the mode (Debezium's vocabulary), the slot's
//! condition and the persisted progress. A pure function, so every mode's behaviour is stated
//! and tested in one place.

use super::state::SnapshotState;
use crate::config::SnapshotMode;

/// The replication slot as found at start.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SlotCondition {
    Missing,
    /// Exists and its WAL is still retained.
    Usable,
    /// Exists but the server removed WAL it needs (`wal_status = 'lost'`): it cannot stream.
    Lost,
}

/// How the rows are read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Create the slot exporting its snapshot (dropping a lost slot first) and read under that
    /// snapshot: rows and stream meet exactly at the slot's consistent point.
    Exported { drop_slot_first: bool },
    /// Read under a new snapshot while the existing slot (if any) stays where it is; the
    /// stream then replays every change since the slot's position, so rows read here may be
    /// followed by older changes to them (the documented duplicate window). `resume` keeps
    /// the chunks already done.
    Fresh { resume: bool },
}

/// What to do at start.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StartPlan {
    pub snapshot: Option<SnapshotKind>,
    /// Stream from the slot afterwards (false: `initial_only`, stop after the snapshot).
    pub stream: bool,
}

/// Decide. `state` is the persisted progress for this slot, if any.
pub fn decide(mode: SnapshotMode, slot: SlotCondition, state: Option<&SnapshotState>) -> StartPlan {
    use SlotCondition::{Lost, Missing, Usable};
    let stream = mode != SnapshotMode::InitialOnly;
    let exported = |drop_slot_first| StartPlan {
        snapshot: Some(SnapshotKind::Exported { drop_slot_first }),
        stream,
    };
    let fresh = |resume| StartPlan {
        snapshot: Some(SnapshotKind::Fresh { resume }),
        stream,
    };
    let none = StartPlan {
        snapshot: None,
        stream,
    };
    if mode == SnapshotMode::Never {
        return none;
    }
    let unfinished = state.is_some_and(|s| !s.completed);
    if mode == SnapshotMode::InitialOnly {
        // No slot is needed: nothing streams afterwards.
        return match state {
            Some(s) if s.completed => none,
            _ => fresh(unfinished),
        };
    }
    match (slot, unfinished) {
        // A snapshot was interrupted but the slot kept every change since it began.
        (Usable, true) => fresh(true),
        // Without the slot, the changes since the interrupted snapshot began are gone:
        // start over.
        (Missing, true) => exported(false),
        (Lost, true) => exported(true),
        (Missing, false) => exported(false),
        (Lost, false) => match mode {
            SnapshotMode::WhenNeeded | SnapshotMode::Always => exported(true),
            // `initial` does not snapshot an existing slot; streaming reports the lost slot.
            _ => none,
        },
        (Usable, false) => match mode {
            SnapshotMode::Always => fresh(false),
            _ => none,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SlotCondition::{Lost, Missing, Usable};
    use SnapshotMode::{Always, Initial, InitialOnly, Never, WhenNeeded};

    fn unfinished() -> SnapshotState {
        SnapshotState::started("s")
    }

    fn finished() -> SnapshotState {
        SnapshotState {
            completed: true,
            ..SnapshotState::started("s")
        }
    }

    fn plan(snapshot: Option<SnapshotKind>, stream: bool) -> StartPlan {
        StartPlan { snapshot, stream }
    }

    const EXPORTED: Option<SnapshotKind> = Some(SnapshotKind::Exported {
        drop_slot_first: false,
    });
    const RECREATED: Option<SnapshotKind> = Some(SnapshotKind::Exported {
        drop_slot_first: true,
    });
    const RESUMED: Option<SnapshotKind> = Some(SnapshotKind::Fresh { resume: true });
    const FRESH: Option<SnapshotKind> = Some(SnapshotKind::Fresh { resume: false });

    #[test]
    fn initial_snapshots_only_a_new_slot() {
        assert_eq!(decide(Initial, Missing, None), plan(EXPORTED, true));
        assert_eq!(decide(Initial, Usable, None), plan(None, true));
        assert_eq!(decide(Initial, Usable, Some(&finished())), plan(None, true));
        assert_eq!(decide(Initial, Lost, None), plan(None, true));
    }

    #[test]
    fn an_interrupted_snapshot_resumes_while_the_slot_lives() {
        for mode in [Initial, Always, WhenNeeded] {
            assert_eq!(
                decide(mode, Usable, Some(&unfinished())),
                plan(RESUMED, true)
            );
            assert_eq!(
                decide(mode, Missing, Some(&unfinished())),
                plan(EXPORTED, true)
            );
            assert_eq!(
                decide(mode, Lost, Some(&unfinished())),
                plan(RECREATED, true)
            );
        }
    }

    #[test]
    fn never_never_snapshots() {
        for slot in [Missing, Usable, Lost] {
            assert_eq!(decide(Never, slot, Some(&unfinished())), plan(None, true));
        }
    }

    #[test]
    fn initial_only_snapshots_once_without_streaming() {
        assert_eq!(decide(InitialOnly, Missing, None), plan(FRESH, false));
        assert_eq!(
            decide(InitialOnly, Missing, Some(&unfinished())),
            plan(RESUMED, false)
        );
        assert_eq!(
            decide(InitialOnly, Usable, Some(&finished())),
            plan(None, false)
        );
    }

    #[test]
    fn always_snapshots_at_every_start() {
        assert_eq!(decide(Always, Missing, None), plan(EXPORTED, true));
        assert_eq!(decide(Always, Usable, Some(&finished())), plan(FRESH, true));
        assert_eq!(decide(Always, Lost, None), plan(RECREATED, true));
    }

    #[test]
    fn when_needed_snapshots_when_the_slot_is_missing_or_lost() {
        assert_eq!(decide(WhenNeeded, Missing, None), plan(EXPORTED, true));
        assert_eq!(
            decide(WhenNeeded, Lost, Some(&finished())),
            plan(RECREATED, true)
        );
        assert_eq!(
            decide(WhenNeeded, Usable, Some(&finished())),
            plan(None, true)
        );
    }
}
