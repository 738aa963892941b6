//! `org.osbuild.noop` (assembler): produces nothing.

use crate::stages::{StageArgs, StageResult};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Options {}

pub fn run(_args: &StageArgs) -> StageResult {
    Ok(None)
}
