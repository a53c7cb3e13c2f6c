//! The zoo models compiled into the command (`netc train --model NAME`);
//! build.rs lists them and writes their constructors.

include!(concat!(env!("OUT_DIR"), "/zoo_index.rs"));

/// A zoo model by its file stem.
pub fn find(name: &str) -> Option<crate::Network> {
    MODELS.iter().find(|m| m.name == name).copied()
}

/// The zoo's names, for messages.
pub fn names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}
