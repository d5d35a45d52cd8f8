//! `new_value` (not built yet: rules using it are refused at load).

use super::{BehaviourError, Detector, Fired, Stats};
use crate::event::Event;
use crate::rule::group::GroupBy;
use crate::rule::spec::NewValueSpec;

/// A compiled `new_value` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
}

impl Config {
    /// Refuses every block until the behaviour exists.
    pub fn compile(_spec: &NewValueSpec) -> Result<Config, BehaviourError> {
        Err(BehaviourError::new("new_value", "behaviour `new_value` is not supported yet"))
    }
}

/// The `new_value` state machine.
#[derive(Debug)]
pub struct NewValue;

impl NewValue {
    /// A fresh state machine.
    pub fn new(_config: Config) -> NewValue {
        NewValue
    }
}

impl Detector for NewValue {
    fn observe(&mut self, _e: &Event, _steps: u64, _out: &mut Vec<Fired>) {}

    fn stats(&self) -> Stats {
        Stats::default()
    }
}
