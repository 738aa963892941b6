//! `org.osbuild.noop` (assembler): produces nothing.

use crate::{Stage, StageArgs, StageResult};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Options {}

/// The assembler itself, as the registry lists it.
pub struct Noop;

impl Stage for Noop {
    const NAME: &'static str = "org.osbuild.noop";
    type Options = Options;

    fn run(_args: &StageArgs, _options: Options) -> StageResult {
        Ok(None)
    }
}
