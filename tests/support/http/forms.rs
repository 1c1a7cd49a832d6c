//! Request bodies a browser sends for HTML forms: `application/x-www-form-urlencoded` and
//! `multipart/form-data` (for [`super::Session::post_form`] and
//! [`super::Session::post_multipart`]).

/// `a=1&b=x+y`, percent-encoding everything but unreserved characters.
pub fn form_urlencoded(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", form_escape(name), form_escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `multipart/form-data` body under construction.
#[derive(Debug, Default, Clone)]
pub struct Multipart {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
struct Part {
    name: String,
    /// File name and content type, for a file.
    file: Option<(String, String)>,
    data: Vec<u8>,
}

impl Multipart {
    pub fn new() -> Multipart {
        Multipart::default()
    }

    pub fn field(mut self, name: &str, value: &str) -> Multipart {
        self.parts.push(Part {
            name: name.to_owned(),
            file: None,
            data: value.as_bytes().to_vec(),
        });
        self
    }

    pub fn file(
        mut self,
        name: &str,
        filename: &str,
        content_type: &str,
        data: &[u8],
    ) -> Multipart {
        self.parts.push(Part {
            name: name.to_owned(),
            file: Some((filename.to_owned(), content_type.to_owned())),
            data: data.to_vec(),
        });
        self
    }

    /// The Content-Type (with its boundary) and the body.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let boundary = "----tower-fastcgi-test-7d1f0c9a2b";
        let mut body = Vec::new();
        for Part { name, file, data } in &self.parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file {
                Some((filename, content_type)) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}
