//! Closed sets of named options (methods, dtypes, devices...). The library names each option
//! and says what it does; front ends (the CLI, a config file, the browser page) list and parse
//! them from here, so the library needs no knowledge of any of them.

/// An enum whose values have stable names.
pub trait Choice: Copy + Sized + Send + Sync + 'static {
    /// Every value, in the order a listing shows them.
    const ALL: &'static [Self];

    /// The value's name, as written in commands, manifests and file names.
    fn name(self) -> &'static str;

    /// One line on what the value does.
    fn about(self) -> &'static str;

    /// The value named `name`.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }
}

/// Implements [`Choice`] from a table of `Variant => "name": "about"`.
macro_rules! choice {
    ($ty:ty { $($variant:ident => $name:literal : $about:literal),+ $(,)? }) => {
        impl $crate::choice::Choice for $ty {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
            fn about(self) -> &'static str {
                match self { $(Self::$variant => $about),+ }
            }
        }
    };
}
pub(crate) use choice;
