//! Limits on what a user's input can make the program do: memory it may plan for, how
//! much of a value an error line echoes, and JSON objects with a key twice.

/// Memory this process may use: the machine's RAM or the address-space limit
/// (`ulimit -v`), whichever is lower, less a quarter for the data, code and threads.
pub fn memory_limit() -> u64 {
    let ram = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb.saturating_mul(1024));
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let rlimit = if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY
    {
        lim.rlim_cur
    } else {
        u64::MAX
    };
    ram.min(rlimit) / 4 * 3
}

/// Longest JSON string (or object key) a streamed JSON file may hold: the longest a run
/// writes is a data folder's path (at most 4096 bytes).
pub const MAX_JSON_STRING: usize = 64 << 10;

/// A reader of JSON text that fails on a string longer than [`MAX_JSON_STRING`] bytes. A
/// streaming parser holds each string (a key, a value, even one it skips) whole before it
/// looks at it; behind this reader, that is at most 64 KiB, whatever the file holds (no
/// other JSON token is held: numbers and whitespace are consumed as they come).
pub struct ShortStrings<R> {
    inner: R,
    in_string: bool,
    escaped: bool,
    /// Bytes of the current string so far.
    run: usize,
}

impl<R> ShortStrings<R> {
    pub fn new(inner: R) -> ShortStrings<R> {
        ShortStrings {
            inner,
            in_string: false,
            escaped: false,
            run: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ShortStrings<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Outside a string a quote opens one; inside, an unescaped quote closes it.
        for &b in &buf[..n] {
            if !self.in_string {
                (self.in_string, self.run) = (b == b'"', 0);
                continue;
            }
            self.run += 1;
            if self.run > MAX_JSON_STRING {
                return Err(std::io::Error::other(format!(
                    "holds a string longer than {MAX_JSON_STRING} bytes"
                )));
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
        }
        Ok(n)
    }
}

/// Longest echo of a user's value in an error line.
const MAX_ECHO: usize = 80;

/// Text cut to [`MAX_ECHO`] characters (an error line must not echo a 50 MB value).
pub fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((i, _)) => format!("{}... ({} bytes)", &text[..i], text.len()),
        None => text.to_string(),
    }
}

/// A number as short as it reads back (`0.1`, `3e38`, `1e39`), for error lines: Rust's
/// `{}` writes 3e38 as 39 digits.
pub fn num(x: f64) -> String {
    // Rust's `{}` and `{:e}` both write the shortest digits that read back; the exponent
    // form only where the plain one would be long.
    if x != 0.0 && x.is_finite() && !(1e-4..1e16).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// A JSON value for an error line: a number by [`num`] (`50`, not `50.0`), else as JSON.
pub fn show_value(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_f64() => num(x),
        _ => cut(&v.to_string()),
    }
}

/// Deserializes any JSON only to fail on an object with a key twice (at any depth).
pub struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "key `{}` appears twice",
                    cut(&key)
                )));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

/// Text with every word (run of non-spaces) longer than [`MAX_ECHO`] characters elided in
/// its middle: an error line names a long path by its start and its end.
pub fn shorten_words(text: &str) -> String {
    let words: Vec<String> = text.split(' ').map(shorten_word).collect();
    words.join(" ")
}

fn shorten_word(w: &str) -> String {
    let n = w.chars().count();
    if n <= MAX_ECHO {
        return w.to_string();
    }
    let keep = (MAX_ECHO - 3) / 2;
    let head: String = w.chars().take(keep).collect();
    let tail: String = w.chars().skip(n - keep).collect();
    format!("{head}...{tail}")
}

/// A path as an output line shows it (see [`shorten_words`]).
pub fn shorten(path: &std::path::Path) -> String {
    shorten_words(&path.display().to_string())
}
