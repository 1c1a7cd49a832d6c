//! FCGI_STDERR → `tracing`, sanitised and bounded.
//!
//! Backend error output is logged line by line at WARN inside the request's span, never
//! sent to the client. Control characters are escaped so a backend (or a client whose
//! input a script echoes to stderr) cannot forge log lines, and each request logs at most
//! a fixed number of bytes; the rest is only counted.

/// Longest line logged as one event; longer lines are cut into pieces.
const MAX_LINE: usize = 1024;

#[derive(Debug)]
pub(crate) struct StderrLog {
    pending: Vec<u8>,
    logged: usize,
    limit: usize,
    suppressed: u64,
}

impl StderrLog {
    pub(crate) fn new(limit: usize) -> StderrLog {
        StderrLog {
            pending: Vec::new(),
            logged: 0,
            limit,
            suppressed: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = MAX_LINE - self.pending.len();
            let take = data
                .iter()
                .take(room)
                .position(|&b| b == b'\n')
                .map_or(data.len().min(room), |i| i + 1);
            let (piece, rest) = data.split_at(take);
            data = rest;
            if let Some(line) = piece.strip_suffix(b"\n") {
                self.pending.extend_from_slice(line);
                self.flush_line();
            } else {
                self.pending.extend_from_slice(piece);
                if self.pending.len() >= MAX_LINE {
                    self.flush_line();
                }
            }
        }
    }

    /// Logs what is left at the end of the request.
    pub(crate) fn finish(&mut self) {
        if !self.pending.is_empty() {
            self.flush_line();
        }
        if self.suppressed > 0 {
            tracing::warn!(
                target: "tower_fastcgi::stderr",
                suppressed_bytes = self.suppressed,
                "FastCGI stderr output exceeded the log limit"
            );
            self.suppressed = 0;
        }
    }

    fn flush_line(&mut self) {
        let line = std::mem::take(&mut self.pending);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if self.logged >= self.limit {
            self.suppressed += line.len() as u64 + 1;
            return;
        }
        self.logged += line.len() + 1;
        tracing::warn!(target: "tower_fastcgi::stderr", "FastCGI stderr: {}", sanitize(line));
    }
}

impl Drop for StderrLog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Lossy UTF-8 with control characters escaped (`\n` → `\x0a`).
pub(crate) fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(sanitize(b"a\rb\x1b[31m\tc"), "a\\x0db\\x1b[31m\tc");
        assert_eq!(sanitize(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
    }

    #[test]
    fn bounded() {
        let mut log = StderrLog::new(100);
        for _ in 0..1000 {
            log.push(b"PHP message: something went wrong here\n");
        }
        assert!(log.logged <= 100 + MAX_LINE);
        assert!(log.suppressed > 30_000);
        // A line without newline longer than MAX_LINE is cut, not buffered forever.
        let mut log = StderrLog::new(usize::MAX);
        log.push(&vec![b'x'; 10 * MAX_LINE]);
        assert!(log.pending.len() < MAX_LINE);
    }
}
