//! The hotline's answers to common questions, searched by words. The entries are data
//! (`data/ops/faq.json`); this is only the search.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaqEntry {
    pub id: String,
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Entries matching every word of `query` (in the question, answer or tags, by prefix; Chinese
/// text by substring), best first. An empty query returns every entry.
pub fn search<'a>(entries: &'a [FaqEntry], query: &str) -> Vec<&'a FaqEntry> {
    let terms = words(query);
    if terms.is_empty() {
        return entries.iter().collect();
    }
    let mut scored: Vec<(u32, usize, &FaqEntry)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let q = words(&e.question);
            let a = words(&e.answer);
            let t: Vec<String> = e.tags.iter().flat_map(|t| words(t)).collect();
            let hit = |ws: &[String], term: &str| {
                ws.iter()
                    .any(|w| w.starts_with(term) || (!term.is_ascii() && w.contains(term)))
            };
            let mut score = 0;
            for term in &terms {
                let s = 3 * u32::from(hit(&q, term))
                    + 3 * u32::from(hit(&t, term))
                    + u32::from(hit(&a, term));
                if s == 0 {
                    return None;
                }
                score += s;
            }
            Some((score, i, e))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, _, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_words_and_prefixes() {
        let entries = vec![
            FaqEntry {
                id: "pay".into(),
                question: "How do I pay for charging?".into(),
                answer: "Scan the QR code with the app; cards are accepted too.".into(),
                tags: vec!["payment".into(), "支付".into()],
            },
            FaqEntry {
                id: "stuck".into(),
                question: "The cable will not come out".into(),
                answer: "Stop the session in the app, then press unlock.".into(),
                tags: vec!["unlock".into()],
            },
        ];
        assert_eq!(search(&entries, "").len(), 2);
        assert_eq!(
            search(&entries, "pay").first().map(|e| e.id.as_str()),
            Some("pay")
        );
        assert_eq!(
            search(&entries, "CABLE unlock")
                .first()
                .map(|e| e.id.as_str()),
            Some("stuck")
        );
        assert!(search(&entries, "cable payment").is_empty());
        assert_eq!(search(&entries, "支付").len(), 1);
    }
}
