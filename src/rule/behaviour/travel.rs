//! `travel` (not built yet: rules using it are refused at load).

use std::sync::Arc;

use super::{BehaviourError, Detector, Fired, Stats};
use crate::event::Event;
use crate::rule::group::GroupBy;
use crate::rule::spec::TravelSpec;

/// A compiled `travel` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
}

impl Config {
    /// Refuses every block until the behaviour exists.
    pub fn compile(_spec: &TravelSpec) -> Result<Config, BehaviourError> {
        Err(BehaviourError::new("travel", "behaviour `travel` is not supported yet"))
    }
}

/// The `travel` state machine.
#[derive(Debug)]
pub struct Travel;

impl Travel {
    /// A fresh state machine.
    pub fn new(_config: Config, _geo: Option<Arc<crate::geo::Geo>>) -> Travel {
        Travel
    }
}

impl Detector for Travel {
    fn observe(&mut self, _e: &Event, _steps: u64, _out: &mut Vec<Fired>) {}

    fn stats(&self) -> Stats {
        Stats::default()
    }
}
