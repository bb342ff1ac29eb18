//! Every log line is one line: the text formatter's fields (the message among them) with
//! line breaks and other control characters escaped, whatever text a peer or a file put in
//! them (a refused reload's multi-line TOML error, a certificate's subject).

use std::fmt;

use tracing_subscriber::{
    field::RecordFields,
    fmt::{format::Writer, FormatFields},
};

/// [`tracing_subscriber::fmt::format::DefaultFields`], one line.
#[derive(Debug, Default)]
pub(crate) struct OneLineFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'w> FormatFields<'w> for OneLineFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut buf = String::new();
        self.0.format_fields(Writer::new(&mut buf), fields)?;
        writer.write_str(&corridor_journal::entry::one_line(&buf))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::OneLineFields;

    /// A writer the subscriber formats into.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_event_with_line_breaks_in_its_fields_is_one_line() {
        let out = Captured::default();
        let w = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(OneLineFields::default())
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let why = "expected `=`\n  |\n3 | default = = true\n  |           ^";
            tracing::error!(error = %why, "reload refused:\nkept");
        });
        let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("reload refused:\\nkept") && text.contains("3 | default = = true\\n"),
            "{text}"
        );
    }
}
