//! CRM imports: HCP segments, reps' target lists and prescriptions from small CSV files, checked whole before
//! anything is stored; errors name the line, never its content.

use chrono::Utc;

use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::store;

impl Hub {
    /// Imports HCP segments from CSV with a header `hcp_id,segment`. Returns the row count.
    /// Rejects the whole file on the first bad line, naming the line (never its content).
    pub fn import_hcp_segments(&self, csv: &str) -> Result<usize> {
        let rows = parse_csv(csv, &["hcp_id", "segment"])?
            .into_iter()
            .map(|mut r| (std::mem::take(&mut r[0]), std::mem::take(&mut r[1])))
            .collect::<Vec<_>>();
        self.inner.store.set_hcp_segments(&rows, Utc::now())
    }

    /// Imports reps' target lists from CSV with a header `rep_id,hcp_id`: each rep in the file
    /// gets exactly the HCPs listed for her (reps not in the file keep theirs). The whole file
    /// or nothing.
    pub fn import_rep_targets(&self, csv: &str) -> Result<store::TargetImport> {
        let rows = parse_csv(csv, &["rep_id", "hcp_id"])?
            .into_iter()
            .map(|mut r| (std::mem::take(&mut r[0]), std::mem::take(&mut r[1])))
            .collect::<Vec<_>>();
        self.inner.store.set_rep_targets(&rows, Utc::now())
    }

    /// Imports prescriptions from CSV with a header `hcp_id,product,period,count` (period
    /// `YYYY-MM`). Returns the row count; the whole file or nothing.
    pub fn import_prescriptions(&self, csv: &str) -> Result<usize> {
        let mut rows = Vec::new();
        for (i, r) in parse_csv(csv, &["hcp_id", "product", "period", "count"])?.into_iter().enumerate() {
            let line = i + 2;
            let p = &r[2];
            let valid_period = p.len() == 7
                && p.as_bytes()[4] == b'-'
                && p[..4].bytes().all(|b| b.is_ascii_digit())
                && matches!(p[5..].parse::<u32>(), Ok(1..=12));
            if !valid_period {
                return Err(Error::BadRequest(format!("line {line}: period must be YYYY-MM")));
            }
            let count = r[3].parse::<u64>().map_err(|_| Error::BadRequest(format!("line {line}: count must be a whole number")))?;
            rows.push(store::Prescription { hcp_id: r[0].clone(), product: r[1].clone(), period: r[2].clone(), count });
        }
        self.inner.store.import_prescriptions(&rows)
    }
}

/// Parses a small CSV file with exactly these header columns (no quoting needed for ids;
/// fields may be wrapped in double quotes). Errors name the line, never its content.
fn parse_csv(text: &str, header: &[&str]) -> Result<Vec<Vec<String>>> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let field = |f: &str| f.trim().trim_matches('"').trim().to_string();
    let (_, first) = lines.next().ok_or_else(|| Error::BadRequest("the CSV file is empty".into()))?;
    let got: Vec<String> = first.trim_start_matches('\u{feff}').split(',').map(field).collect();
    if got.iter().map(String::as_str).ne(header.iter().copied()) {
        return Err(Error::BadRequest(format!("the CSV header must be exactly: {}", header.join(","))));
    }
    let mut rows = Vec::new();
    for (i, l) in lines {
        let r: Vec<String> = l.split(',').map(field).collect();
        if r.len() != header.len() || r.iter().any(|f| f.is_empty() || f.len() > 200) {
            return Err(Error::BadRequest(format!("line {}: expected {} non-empty fields", i + 1, header.len())));
        }
        rows.push(r);
    }
    Ok(rows)
}
