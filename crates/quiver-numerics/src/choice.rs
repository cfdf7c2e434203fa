//! Named choices: a Rust enum whose variants are the allowed values of a setting (a method's
//! estimator, a feature map), with one name each — what a configuration file, a command line or a
//! plugin's manifest writes.

/// A set of named choices. Implement it with [`crate::choices!`].
pub trait Choice: Copy + Sized + 'static {
    /// The values, in declaration order.
    const NAMES: &'static [&'static str];
    /// The variant named `name`.
    fn from_name(name: &str) -> Option<Self>;
    /// This variant's name.
    fn name(self) -> &'static str;
}

/// Define an enum of named choices, its [`Choice`] implementation and a `Display` that writes the
/// name:
///
/// ```
/// quiver_numerics::choices! {
///     /// How ties are broken.
///     pub enum TieBreak {
///         /// Seeded uniforms.
///         Random = "random",
///         /// U = 1.
///         Conservative = "conservative",
///     }
/// }
/// use quiver_numerics::Choice;
/// assert_eq!(TieBreak::from_name("random"), Some(TieBreak::Random));
/// assert_eq!(TieBreak::Conservative.name(), "conservative");
/// assert_eq!(TieBreak::Random.to_string(), "random");
/// ```
#[macro_export]
macro_rules! choices {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $crate::Choice for $name {
            const NAMES: &'static [&'static str] = &[$($text),+];
            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
            fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::Choice::name(*self))
            }
        }
    };
}
