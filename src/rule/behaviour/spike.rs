//! `spike` (not built yet: rules using it are refused at load).

use super::{BehaviourError, Detector, Fired, Stats};
use crate::event::Event;
use crate::rule::group::GroupBy;
use crate::rule::spec::SpikeSpec;

/// A compiled `spike` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
}

impl Config {
    /// Refuses every block until the behaviour exists.
    pub fn compile(_spec: &SpikeSpec) -> Result<Config, BehaviourError> {
        Err(BehaviourError::new("spike", "behaviour `spike` is not supported yet"))
    }
}

/// The `spike` state machine.
#[derive(Debug)]
pub struct Spike;

impl Spike {
    /// A fresh state machine.
    pub fn new(_config: Config) -> Spike {
        Spike
    }
}

impl Detector for Spike {
    fn observe(&mut self, _e: &Event, _steps: u64, _out: &mut Vec<Fired>) {}

    fn stats(&self) -> Stats {
        Stats::default()
    }
}
