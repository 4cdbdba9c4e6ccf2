//! `kubectl serin`: look at a rollout, and steer it, from a terminal or a pipeline.
pub mod commands;
pub mod lint;
pub mod render;
#[cfg(test)]
mod tests;
