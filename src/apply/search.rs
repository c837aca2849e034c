//! `project.search` and `work_order.search`: exact (case-insensitive equality) or fuzzy
//! (case-insensitive substring, or every word of the term close to a word of the field,
//! tolerating small typos), ranked best first. Runs on a read connection.

use serde_json::{Value, json};

use super::DomainError;
use super::op::view;
use crate::store::{ReadConn, Record, SearchQuery};
use crate::validate::ValidatedEvent;

pub fn run(conn: &ReadConn, company: &str, event: &ValidatedEvent) -> Result<Value, DomainError> {
    let data = &event.data;
    let term = data
        .get("search_term")
        .and_then(Value::as_str)
        .unwrap_or("");
    let exact = data
        .get("exact_match")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (kind, default_field) = match event.event_type {
        "project.search" => ("project", "project_name"),
        _ => ("work_order", "phase_name"),
    };
    let field = data
        .get("search_field")
        .and_then(Value::as_str)
        .unwrap_or(default_field);
    let scope = data
        .get("project_code")
        .and_then(Value::as_str)
        .filter(|_| kind == "work_order")
        .map(str::to_string);
    let number =
        |name: &str, default: u64| data.get(name).and_then(Value::as_u64).unwrap_or(default);
    let limit = number("limit", DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
    let offset = number("offset", 0).min(MAX_OFFSET) as usize;
    let mut query = SearchQuery {
        company_id: company.to_string(),
        kind: kind.to_string(),
        field: field.to_string(),
        term: term.to_string(),
        scope,
        // One more than asked for: whether there is a next page.
        limit: limit + 1,
        offset,
    };
    let mut page: Vec<Record> = if exact {
        conn.search_exact(&query)?
    } else {
        // Candidates come from the trigram index; only they are scored.
        query.limit = (offset + limit + 1).max(FUZZY_CANDIDATES);
        let candidates = conn.search_candidates(&query)?;
        let mut scored: Vec<(f64, Record)> = candidates
            .into_iter()
            .filter_map(|r| {
                let value = r.data.get(field).and_then(Value::as_str)?;
                fuzzy_score(term, value).map(|score| (score, r))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .skip(offset)
            .take(limit + 1)
            .map(|(_, r)| r)
            .collect()
    };
    let has_more = page.len() > limit;
    page.truncate(limit);
    let mut results = Vec::with_capacity(page.len());
    for record in &page {
        let mut item = view(record);
        if kind == "work_order" {
            let code = record.data["project_code"].as_str().unwrap_or("");
            if let Some(p) = conn.get_record(company, "project", &super::natural_key(&[code]))? {
                item["project"] = json!({
                    "id": p.record_id,
                    "project_code": p.data["project_code"],
                    "project_name": p.data["project_name"],
                });
            }
        }
        results.push(item);
    }
    Ok(json!({
        "success": true,
        "action": "search",
        "results": results,
        "count": results.len(),
        "limit": limit,
        "offset": offset,
        "has_more": has_more,
    }))
}

/// Results per page unless the request says otherwise (`limit`), and the most it may ask for.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;
/// The deepest page a search reaches (`offset`).
const MAX_OFFSET: u64 = 10_000;
/// Fuzzy candidates scored per search (more when a deeper page needs them).
const FUZZY_CANDIDATES: usize = 200;

/// A score in (0, 1] when `term` fuzzily matches `value`, else None.
pub fn fuzzy_score(term: &str, value: &str) -> Option<f64> {
    let term = term.trim().to_lowercase();
    let value = value.to_lowercase();
    if term.is_empty() {
        return None;
    }
    if value == term {
        return Some(1.0);
    }
    if value.starts_with(&term) {
        return Some(0.95);
    }
    if value.contains(&term) {
        return Some(0.9);
    }
    let words: Vec<&str> = value
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut total = 0.0;
    let mut count = 0.0;
    for q in term
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let best = words
            .iter()
            .map(|w| word_similarity(q, w))
            .fold(0.0, f64::max);
        if best == 0.0 {
            return None;
        }
        total += best;
        count += 1.0;
    }
    (count > 0.0).then(|| 0.8 * total / count)
}

/// 1 for a prefix or substring, less for a few typos, 0 when too far apart.
fn word_similarity(q: &str, w: &str) -> f64 {
    if w.starts_with(q) || (q.len() >= 3 && w.contains(q)) {
        return 1.0;
    }
    let q_len = q.chars().count();
    let allowed = match q_len {
        0..=2 => 0,
        3..=5 => 1,
        6..=9 => 2,
        _ => 3,
    };
    if allowed == 0 {
        return 0.0;
    }
    // Compare with the whole word and with its prefix of the term's length (partial words).
    let prefix: String = w.chars().take(q_len + 1).collect();
    let distance = levenshtein(q, w).min(levenshtein(q, &prefix));
    if distance <= allowed {
        1.0 - distance as f64 / (q_len.max(1) as f64 + 1.0)
    } else {
        0.0
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(current[j] + 1);
        }
        prev = current;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_case_and_substrings() {
        assert!(fuzzy_score("Skylin Towr", "Skyline Tower Construction").is_some());
        assert!(fuzzy_score("fundation instalation", "Foundation Installation").is_some());
        assert!(fuzzy_score("skyline", "Skyline Tower Construction").is_some());
        assert!(fuzzy_score("Electrical", "Electrical Rough-In").is_some());
        assert!(fuzzy_score("fundation instalation", "Framing").is_none());
        assert!(fuzzy_score("Riverside", "Skyline Tower Construction").is_none());
        assert!(
            fuzzy_score("Skyline", "Skyline").unwrap()
                > fuzzy_score("Skylin Towr", "Skyline Tower").unwrap()
        );
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
    }
}
