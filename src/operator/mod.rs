//! What the commands and the console both do: redeliver a selection, send a test request, report status.

pub(crate) mod probe;
pub(crate) mod redeliver;
pub(crate) mod status;
