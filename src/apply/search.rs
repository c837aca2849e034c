//! `project.search` and `work_order.search`: exact (case-insensitive equality) or fuzzy
//! (case-insensitive substring, or every word of the term close to a word of the field,
//! tolerating small typos), ranked best first. Runs on a read connection.

use serde_json::{Map, Value, json};

use super::DomainError;
use super::op::view;
use crate::catalog::Entity;
use crate::store::{ReadConn, Record, SearchQuery};

/// What a search looks through.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Projects,
    WorkOrders,
}

pub(super) fn run(
    conn: &ReadConn,
    company: &str,
    target: Target,
    data: &Map<String, Value>,
) -> Result<Value, DomainError> {
    let term = data
        .get("search_term")
        .and_then(Value::as_str)
        .unwrap_or("");
    let exact = data
        .get("exact_match")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (entity, default_field) = match target {
        Target::Projects => (Entity::Project, "project_name"),
        Target::WorkOrders => (Entity::WorkOrder, "phase_name"),
    };
    let field = data
        .get("search_field")
        .and_then(Value::as_str)
        .unwrap_or(default_field);
    let scope = data
        .get("project_code")
        .and_then(Value::as_str)
        .filter(|_| entity == Entity::WorkOrder)
        .map(str::to_string);
    let number =
        |name: &str, default: u64| data.get(name).and_then(Value::as_u64).unwrap_or(default);
    let limit = number("limit", DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
    let offset = number("offset", 0).min(MAX_OFFSET) as usize;
    let mut query = SearchQuery {
        company_id: company.to_string(),
        kind: entity.kind().to_string(),
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
        let mut item = Value::Object(view(record));
        if entity == Entity::WorkOrder {
            let code = record.data["project_code"].as_str().unwrap_or("");
            let key = super::natural_key(&[code]);
            if let Some(p) = conn.get_record(company, Entity::Project.kind(), &key)? {
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

/// The longest term scored: the schemas' `maxLength` of `search_term`, which refuses longer
/// ones with a 400 before a search starts.
const MAX_TERM_CHARS: usize = 255;

/// How much of a field fuzzy matching reads: a match must start within its first characters.
/// Bounds the work per candidate whatever the size of stored values (a few 900 KB names once
/// made a search take seconds).
const FIELD_WINDOW_CHARS: usize = 256;

/// A score in (0, 1] when `term` fuzzily matches `value`, else None. Reads at most
/// [`MAX_TERM_CHARS`] of the term and [`FIELD_WINDOW_CHARS`] of the value, so its cost is
/// bounded by a constant.
pub(super) fn fuzzy_score(term: &str, value: &str) -> Option<f64> {
    let term = window(term.trim(), MAX_TERM_CHARS).to_lowercase();
    let value = window(value, FIELD_WINDOW_CHARS).to_lowercase();
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

/// The first `max` characters of `text`.
fn window(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
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
    // Compare with the word's prefix of the term's length (partial words) and, when their
    // lengths are close enough for it to matter, with the whole word.
    let prefix = window(w, q_len + 1);
    let mut distance = strsim::levenshtein(q, prefix);
    if w.len() > prefix.len() && w.chars().count() <= q_len + allowed {
        distance = distance.min(strsim::levenshtein(q, w));
    }
    if distance <= allowed {
        1.0 - distance as f64 / (q_len.max(1) as f64 + 1.0)
    } else {
        0.0
    }
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
    fn work_per_candidate_is_bounded_for_long_terms_and_huge_values() {
        let term: String = "abcdefghij ".repeat(23).chars().take(255).collect();
        let huge = "klmnopqrstu ".repeat(75_000);
        let started = std::time::Instant::now();
        for _ in 0..5 {
            assert!(fuzzy_score(&term, &huge).is_none());
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        // Matching still works at the start of a long value.
        let long_name = format!("Skyline Tower {}", "x".repeat(900_000));
        assert!(fuzzy_score("Skylin Towr", &long_name).is_some());
    }
}
