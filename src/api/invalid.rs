//! A spec serin cannot act on. Here, below `plan` and `analysis`, because both
//! report it: `plan` for the Release's own fields, `analysis` for its templates,
//! args and Secrets.

/// A spec the controller cannot act on: the field at fault and why. Shown as
/// `field: message` on the Degraded condition (reason InvalidSpec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The path in the Release, e.g. `spec.strategy.canary.steps[2].analysis.args`.
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
