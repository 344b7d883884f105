//! Values named on the command line and in configs (optimizers, matmul strategies): one
//! lookup, so every name list reads and fails the same way.

/// The item of `all` whose name is `s`; otherwise the one-line error
/// `unknown WHAT "s" (expected one of a, b, c)`.
pub fn by_name<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, String> {
    all.iter().copied().find(|&t| name(t) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
        format!(
            "unknown {what} {s:?} (expected one of {})",
            names.join(", ")
        )
    })
}

/// `Display` as its name and `FromStr` by [`by_name`], for a `Copy` type with
/// `fn name(self) -> &'static str`, the list `$all` of its values and `$what` for errors.
macro_rules! named {
    ($t:ty, $all:expr, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $crate::names::by_name(s, $all, <$t>::name, $what)
            }
        }
    };
}
pub(crate) use named;
