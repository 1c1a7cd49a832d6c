//! The spawned program's stdout and stderr, line by line into `tracing`: each line cut
//! at a limit (the rest counted), control characters replaced, so a program that
//! prints a megabyte without a newline costs the limit, not a megabyte.

use std::io::{self, BufRead, BufReader, Read};
use std::thread;

/// Reads `pipe` until every writer has closed it, logging each line; runs on a
/// thread of its own (a blocking read).
pub(crate) fn log_lines<R: Read + Send + 'static>(
    pipe: R,
    program: String,
    slot: usize,
    limit: usize,
) -> io::Result<()> {
    thread::Builder::new()
        .name(format!("fcgi-spawn-out-{slot}"))
        .spawn(move || {
            let mut lines = Lines::new(BufReader::new(pipe), limit);
            while let Some((line, cut)) = lines.next_line() {
                let text = sanitize(&line);
                if cut > 0 {
                    tracing::warn!(target: "tower_fastcgi::spawn", program = %program, process = slot, "{text} … ({cut} more bytes not logged)");
                } else {
                    tracing::warn!(target: "tower_fastcgi::spawn", program = %program, process = slot, "{text}");
                }
            }
        })
        .map(drop)
}

/// Splits a byte stream into lines of at most `limit` bytes kept.
struct Lines<R> {
    input: R,
    limit: usize,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R, limit: usize) -> Lines<R> {
        Lines { input, limit }
    }

    /// The next line (without its newline) and how many of its bytes were dropped;
    /// `None` at the end of the stream or on a read error.
    fn next_line(&mut self) -> Option<(Vec<u8>, usize)> {
        let mut line = Vec::new();
        let mut cut = 0usize;
        let mut any = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return any.then_some((line, cut)),
            };
            if chunk.is_empty() {
                return any.then_some((line, cut));
            }
            any = true;
            let (part, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (chunk.get(..at).unwrap_or_default(), true),
                None => (chunk, false),
            };
            let room = self.limit.saturating_sub(line.len());
            let keep = part.len().min(room);
            line.extend_from_slice(part.get(..keep).unwrap_or_default());
            cut += part.len() - keep;
            let used = part.len() + usize::from(newline);
            self.input.consume(used);
            if newline {
                return Some((line, cut));
            }
        }
    }
}

/// Lossy UTF-8 with control characters (but tabs) shown as `\u{..}` escapes, so a
/// line cannot forge log lines or terminal sequences.
fn sanitize(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], limit: usize) -> Vec<(String, usize)> {
        // A tiny buffer, so lines straddle reads.
        let mut lines = Lines::new(BufReader::with_capacity(3, input), limit);
        std::iter::from_fn(|| lines.next_line())
            .map(|(l, cut)| (String::from_utf8(l).unwrap(), cut))
            .collect()
    }

    #[test]
    fn lines_are_split_and_cut_at_the_limit() {
        assert_eq!(
            all(b"one\ntwo three four\n\nlast", 5),
            [
                ("one".to_owned(), 0),
                ("two t".to_owned(), 9),
                (String::new(), 0),
                ("last".to_owned(), 0)
            ]
        );
        assert!(all(b"", 5).is_empty());
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(sanitize(b"a\x1b[2Jb\tc\r"), "a\\u{1b}[2Jb\tc");
        assert_eq!(sanitize(b"\xff"), "\u{fffd}");
    }
}
