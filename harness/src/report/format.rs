//! What every part of the report writes the same way: table cells, labels, the command
//! that repeats a run, and tables in Markdown and HTML.

use std::fmt::Write as _;
use std::path::Path;

use crate::records::run_record::{self, RunRecord};

/// A row of this harness's: `local (ours)`, `local (as LRA ran it; ours)`.
pub fn ours(label: &str) -> String {
    match label.strip_suffix(')').filter(|_| label.contains(" (")) {
        Some(head) => format!("{head}; ours)"),
        None => format!("{label} (ours)"),
    }
}

/// `text`, cut to `max` characters with an ellipsis.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_string() } else { format!("{}…", text.chars().take(max).collect::<String>()) }
}

/// A number of bytes in MiB, or GiB from 1 GiB on.
pub fn bytes_label(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 { format!("{:.2} GiB", mib / 1024.0) } else { format!("{mib:.1} MiB") }
}

/// A run's model sizes and mechanism settings in a line: `d 64 (qkv 64), 4 heads, 2
/// layers, ff 128, cls, sinusoidal; block_size 16`.
pub fn hyperparameters(record: &RunRecord) -> String {
    let m = &record.config.task.model;
    let mut text = format!(
        "d {} (qkv {}), {} heads, {} layers, ff {}, {}, {}",
        m.d_model,
        m.qkv_dim,
        m.heads,
        m.layers,
        m.d_ff,
        serde_json::to_value(m.pooling).map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default(),
        serde_json::to_value(m.positions).map(|v| v.as_str().unwrap_or_default().to_string()).unwrap_or_default(),
    );
    if let Ok(serde_json::Value::Object(mechanism)) = serde_json::to_value(&record.config.attention) {
        for settings in mechanism.values().filter_map(|v| v.as_object()) {
            // The variant is in the model's label.
            let listed: Vec<String> =
                settings.iter().filter(|(name, _)| *name != "variant").map(|(name, value)| format!("{name} {value}")).collect();
            let _ = write!(text, "; {}", listed.join(", "));
        }
    }
    text
}

/// The command that reproduces a run's numbers.
pub fn reproduce_command(results: &Path, record: &RunRecord) -> String {
    format!("lra run --config {}", run_record::run_dir(results, &record.run_id).join("config.json").display())
}

/// A table as rows of cells, rendered to Markdown or HTML.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Tooltips of the HTML cells, by row and column as `rows` (empty: none); Markdown has
    /// none.
    pub titles: Vec<Vec<String>>,
}

impl Table {
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|{}\n", self.header.join(" | "), "---|".repeat(self.header.len()));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    pub fn html(&self) -> String {
        let mut out = String::from("<table>\n<thead><tr>");
        for h in &self.header {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for (r, row) in self.rows.iter().enumerate() {
            out.push_str("<tr>");
            for (c, cell) in row.iter().enumerate() {
                let class = if cell.starts_with("FAIL") { " class=\"fail\"" } else { "" };
                let title = match self.titles.get(r).and_then(|titles| titles.get(c)) {
                    Some(title) if !title.is_empty() => format!(" title=\"{}\"", escape(title)),
                    _ => String::new(),
                };
                let _ = write!(out, "<td{class}{title}>{}</td>", escape(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
