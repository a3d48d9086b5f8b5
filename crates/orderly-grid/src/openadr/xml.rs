//! A small XML tree over `quick-xml`, and a writer for the messages the VEN sends.
//!
//! OpenADR 2.0b messages are small (a few KiB) and deeply nested; reading them into a tree and
//! picking fields by local name is simpler and more tolerant of the VTN's choice of prefixes
//! than a streaming decoder. Namespaces are not checked element by element: every 2.0b element
//! name the VEN reads is unique across the namespaces a 2.0b payload uses.

use quick_xml::Reader;
use quick_xml::escape::{escape, unescape};
use quick_xml::events::Event;

use super::OpenAdrError;

/// One element: its local name (prefix dropped), children in order and its text content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names.
    pub fn path(&self, path: &[&str]) -> Option<&Element> {
        let mut at = self;
        for name in path {
            at = at.child(name)?;
        }
        Some(at)
    }

    /// Trimmed text at a path of child names; `None` if absent or empty.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        let text = self.path(path)?.text.trim();
        (!text.is_empty()).then_some(text)
    }

    /// The first descendant (depth first, self excluded) with this local name.
    pub fn find(&self, name: &str) -> Option<&Element> {
        for child in &self.children {
            if child.name == name {
                return Some(child);
            }
            if let Some(found) = child.find(name) {
                return Some(found);
            }
        }
        None
    }
}

fn local(name: &[u8]) -> Result<String, OpenAdrError> {
    std::str::from_utf8(name)
        .map(str::to_owned)
        .map_err(|_| OpenAdrError::Xml("element name is not UTF-8".into()))
}

/// Parses a whole document into its root element.
pub fn parse(xml: &str) -> Result<Element, OpenAdrError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let xml_err = |e: quick_xml::Error| OpenAdrError::Xml(e.to_string());
    loop {
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::Start(start) => stack.push(Element {
                name: local(start.local_name().as_ref())?,
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: local(start.local_name().as_ref())?,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| OpenAdrError::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(element),
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    let raw = text
                        .decode()
                        .map_err(|e| OpenAdrError::Xml(e.to_string()))?;
                    top.text.push_str(&raw);
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    let raw = data
                        .decode()
                        .map_err(|e| OpenAdrError::Xml(e.to_string()))?;
                    top.text.push_str(&raw);
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    let name = reference
                        .decode()
                        .map_err(|e| OpenAdrError::Xml(e.to_string()))?;
                    let entity = format!("&{name};");
                    let resolved =
                        unescape(&entity).map_err(|e| OpenAdrError::Xml(e.to_string()))?;
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => return Err(OpenAdrError::Xml("document ended early".into())),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
}

/// Namespaces of the 2.0b payload, with the prefixes openleadr uses (and its XSD accepts).
pub const NS_OADR: &str = "http://openadr.org/oadr-2.0b/2012/07";
pub const NS_EI: &str = "http://docs.oasis-open.org/ns/energyinterop/201110";
pub const NS_PYLD: &str = "http://docs.oasis-open.org/ns/energyinterop/201110/payloads";
pub const NS_XCAL: &str = "urn:ietf:params:xml:ns:icalendar-2.0";
pub const NS_STRM: &str = "urn:ietf:params:xml:ns:icalendar-2.0:stream";
pub const NS_EMIX: &str = "http://docs.oasis-open.org/ns/emix/2011/06";
pub const NS_POWER: &str = "http://docs.oasis-open.org/ns/emix/2011/06/power";
pub const NS_SCALE: &str = "http://docs.oasis-open.org/ns/emix/2011/06/siscale";

/// Builds a document as text; element names carry their prefix (`ei:venID`), namespaces are
/// declared with `attr("xmlns:ei", ..)` where the element needs them.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    open: Vec<&'static str>,
    /// A start tag is still open for attributes.
    pending: bool,
}

impl Writer {
    pub fn new() -> Self {
        Self {
            out: String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"),
            ..Self::default()
        }
    }

    fn close_pending(&mut self) {
        if self.pending {
            self.out.push('>');
            self.pending = false;
        }
    }

    pub fn start(&mut self, name: &'static str) -> &mut Self {
        self.close_pending();
        self.out.push('<');
        self.out.push_str(name);
        self.open.push(name);
        self.pending = true;
        self
    }

    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(self.pending, "attribute after the start tag was closed");
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        self.out.push_str(&escape(value));
        self.out.push('"');
        self
    }

    pub fn end(&mut self) -> &mut Self {
        let name = self.open.pop().expect("end without start");
        if self.pending {
            self.out.push_str("/>");
            self.pending = false;
        } else {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        self.close_pending();
        self.out.push_str(&escape(text));
        self
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &'static str, text: &str) -> &mut Self {
        self.start(name);
        self.close_pending();
        self.text(text);
        self.end()
    }

    /// `<name xmlns="ns">text</name>` (how openleadr writes pyld:requestID and friends).
    pub fn leaf_ns(&mut self, name: &'static str, ns: &str, text: &str) -> &mut Self {
        self.start(name).attr("xmlns", ns);
        self.close_pending();
        self.text(text);
        self.end()
    }

    pub fn finish(mut self) -> String {
        self.close_pending();
        assert!(self.open.is_empty(), "unclosed elements: {:?}", self.open);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_entities_and_empty_elements() {
        let doc = r#"<?xml version="1.0"?><a:root xmlns:a="urn:x"><a:b>x &amp; y&#33;</a:b><c/><d><![CDATA[<z>]]></d></a:root>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(root.text_at(&["b"]), Some("x & y!"));
        assert!(root.child("c").is_some());
        assert_eq!(root.text_at(&["c"]), None);
        assert_eq!(root.text_at(&["d"]), Some("<z>"));
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(parse("<a><b></b>").is_err());
        assert!(parse("<a></b>").is_err());
    }

    #[test]
    fn writer_escapes_and_self_closes() {
        let mut w = Writer::new();
        w.start("r").attr("k", "a\"b");
        w.leaf("x", "1 < 2");
        w.start("e").end();
        w.end();
        let text = w.finish();
        assert!(
            text.ends_with("<r k=\"a&quot;b\"><x>1 &lt; 2</x><e/></r>"),
            "{text}"
        );
        let root = parse(&text).unwrap();
        assert_eq!(root.text_at(&["x"]), Some("1 < 2"));
    }
}
