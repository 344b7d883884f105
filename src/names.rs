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
        let hint = closest(s, &names).map_or(String::new(), |c| format!("; did you mean {c}?"));
        format!(
            "unknown {what} {s:?} (expected one of {}){hint}",
            names.join(", ")
        )
    })
}

/// The candidate a misspelt `s` most likely meant: the nearest by edit distance (case,
/// `-` and `_` aside), if near enough (at most a third of its letters, and 3, differ).
pub fn closest<'a>(s: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |t: &str| -> Vec<char> {
        t.chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    };
    let a = norm(s);
    if a.len() > 200 {
        return None;
    }
    candidates
        .iter()
        .map(|&c| (edit_distance(&a, &norm(c)), c))
        .filter(|&(d, c)| d <= (c.chars().count() / 3).clamp(1, 3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (insertions, deletions, substitutions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
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
