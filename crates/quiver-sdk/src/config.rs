//! A plugin's parameters, declared once as a typed struct.
//!
//! [`config!`](crate::config) writes the struct, its parameter specs (what the manifest lists:
//! type, default, range, choices, documentation) and the reading of validated values into it from
//! one list of fields, so that a parameter's name is its field's name: a typo is a compile error,
//! not a runtime lookup that fails. Rules between parameters go in [`PluginConfig::validate`], checked at
//! `create`, before any data is read.
//!
//! ```
//! use quiver_sdk::{abi::PluginError, choices, config, PluginConfig};
//! choices! {
//!     /// How ties are broken.
//!     pub enum TieBreak {
//!         /// Seeded uniforms.
//!         Random = "random",
//!         /// U = 1.
//!         Conservative = "conservative",
//!     }
//! }
//! config! {
//!     /// The parameters of my method.
//!     pub struct MyConfig {
//!         /// FDR level.
//!         pub q: f64 = level(0.1, "FDR level"),
//!         /// Optional cap.
//!         pub cap: Option<f64> = float(None, "a cap").greater_than(0.0),
//!         /// Seed.
//!         pub seed: u64 = int(Some(0), "seed").at_least(0.0),
//!         /// Ties.
//!         pub tie_break: TieBreak = choice(TieBreak::Random, "tie-breaking"),
//!     }
//! }
//! impl PluginConfig for MyConfig {
//!     fn validate(&self) -> Result<(), PluginError> {
//!         if self.cap.is_some_and(|c| c < self.q) {
//!             return Err(PluginError::param("parameter 'cap' must be at least q"));
//!         }
//!         Ok(())
//!     }
//! }
//! use quiver_sdk::ConfigFields;
//! let names: Vec<String> = MyConfig::param_specs().iter().map(|p| p.name.to_string()).collect();
//! assert_eq!(names, ["q", "cap", "seed", "tie_break"]);
//! ```

use crate::{Params, Result};
use quiver_abi::ParamSpec;

/// The fields of a configuration struct as parameters: written by [`config!`](crate::config).
pub trait ConfigFields: Sized + 'static {
    /// The parameter specs, in field order (what the manifest lists).
    fn param_specs() -> Vec<ParamSpec>;
    /// The struct from parameters already checked against the specs (types, ranges, choices).
    fn read(params: &Params) -> Result<Self>;
}

/// A plugin's typed configuration: its fields ([`ConfigFields`], from [`config!`](crate::config))
/// and the rules between them.
pub trait PluginConfig: ConfigFields {
    /// Rules between parameters (`lower_bound < upper_bound`, an option another one needs),
    /// checked at `create`; the message names the parameters.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// A method without parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoParams;

impl ConfigFields for NoParams {
    fn param_specs() -> Vec<ParamSpec> {
        Vec::new()
    }
    fn read(_params: &Params) -> Result<Self> {
        Ok(NoParams)
    }
}

impl PluginConfig for NoParams {}

/// A field type a parameter can be read into.
pub trait FromParam: Sized {
    /// Read parameter `name`.
    fn from_param(params: &Params, name: &str) -> Result<Self>;
}

macro_rules! from_param {
    ($($ty:ty => |$p:ident, $n:ident| $read:expr;)*) => {$(
        impl FromParam for $ty {
            fn from_param($p: &Params, $n: &str) -> Result<Self> {
                $read
            }
        }
    )*};
}

from_param! {
    f64 => |p, n| p.f64(n);
    Option<f64> => |p, n| p.f64_opt(n);
    i64 => |p, n| p.i64(n);
    Option<i64> => |p, n| p.i64_opt(n);
    usize => |p, n| p.usize(n);
    Option<usize> => |p, n| p.usize_opt(n);
    u64 => |p, n| p.usize(n).map(|x| x as u64);
    Option<u64> => |p, n| p.usize_opt(n).map(|x| x.map(|v| v as u64));
    u32 => |p, n| p.usize(n).and_then(|x| u32::try_from(x).map_err(|_| crate::PluginError::param(format!("parameter '{n}' = {x} is too large"))));
    bool => |p, n| p.flag(n);
    String => |p, n| p.text(n).map(str::to_string);
    Option<String> => |p, n| p.text_opt(n).map(|t| t.map(str::to_string));
}

/// Declare a plugin's parameters once, as a typed struct (see the [module](self) documentation).
///
/// Each field is `NAME: TYPE = BUILDER(ARGS).MODIFIERS...`, where `BUILDER` is one of
/// [`crate::param`]'s functions without its first argument (the name is the field's): `float`,
/// `level`, `int`, `boolean`, `choice`, `text`; `MODIFIERS` are [`crate::Param`]'s range methods.
/// `NAME: TYPE = flatten` embeds another configuration (shared parameters, e.g. every critic's).
/// The type says how the value is read: `f64`, `i64`, `usize`, `u64`, `u32`, `bool`, `String`, their
/// `Option`s for parameters without a default, or (with the `choice` builder) a [`crate::choices!`]
/// enum. Implement
/// [`PluginConfig`] for the struct (`impl PluginConfig for MyConfig {}` when no rule ties parameters
/// together).
#[macro_export]
macro_rules! config {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty = $builder:ident $( ( $($arg:expr),* $(,)? ) $( . $m:ident ( $($marg:expr),* ) )* )?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $crate::ConfigFields for $name {
            fn param_specs() -> Vec<$crate::abi::ParamSpec> {
                let mut specs = Vec::new();
                $( $crate::config!(@spec specs, $field, $ty, $builder $( ( $($arg),* ) $( . $m ( $($marg),* ) )* )?); )*
                specs
            }
            fn read(params: &$crate::Params) -> $crate::Result<Self> {
                Ok($name {
                    $( $field: $crate::config!(@read params, $field, $ty, $builder), )*
                })
            }
        }
    };
    (@spec $specs:ident, $field:ident, $ty:ty, flatten) => {
        $specs.extend(<$ty as $crate::ConfigFields>::param_specs())
    };
    (@spec $specs:ident, $field:ident, $ty:ty, $builder:ident ( $($arg:expr),* ) $( . $m:ident ( $($marg:expr),* ) )*) => {
        $specs.push($crate::param::$builder(stringify!($field), $($arg),*) $( . $m ( $($marg),* ) )* .into())
    };
    (@read $params:ident, $field:ident, $ty:ty, flatten) => {
        <$ty as $crate::ConfigFields>::read($params)?
    };
    (@read $params:ident, $field:ident, $ty:ty, choice) => {
        $params.choice::<$ty>(stringify!($field))?
    };
    (@read $params:ident, $field:ident, $ty:ty, $builder:ident) => {
        <$ty as $crate::FromParam>::from_param($params, stringify!($field))?
    };
}
