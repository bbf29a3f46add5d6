//! Navigation within a deck, as pure functions over a manifest and the call's position: where
//! next/previous/goto lead (hidden slides skipped, sub-presentations shown before the slide that
//! requires them, then back), the same in a call that follows a rep's sequence
//! ([`resolve_in_sequence`]), slide lookups by key message, and slide URLs. No I/O: the calls
//! view loads the position (and the call's order), asks here, and persists the move.

use edetail_bundle::{Manifest, Slide};
use serde::{Deserialize, Serialize};

/// A navigation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NavAction {
    Next,
    Previous,
    /// To a slide by id, or the first slide of a presentation, or a slide by key message.
    Goto {
        slide: Option<String>,
        presentation: Option<String>,
        key_message: Option<String>,
    },
}

/// Where navigation landed; the shell loads `url` when `moved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NavTarget {
    pub slide: String,
    pub presentation: String,
    pub url: String,
    /// False when there was nowhere to go ("next" on the last slide, "prev" on the first):
    /// nothing was recorded and the shell must not reload the slide (it would wipe its state).
    pub moved: bool,
}

/// Where a call is in its deck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub slide: &'a str,
    pub presentation: &'a str,
    /// The slide to continue with once the sub-presentation being shown ends.
    pub return_to: Option<&'a str>,
}

/// What a navigation request resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Nowhere to go ("next" on the last slide, "previous" on the first): record nothing.
    Stay,
    /// Enter `slide` (of `presentation`); the call's pending return slide becomes `return_to`.
    Enter { slide: String, presentation: String, return_to: Option<String> },
}

/// One stop of the order a call follows instead of the deck's (a snapshot of the rep's sequence
/// taken when the call started): a slide and the presentation it is shown in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderedSlide {
    pub slide_id: String,
    pub presentation_id: String,
}

/// Why a navigation request cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NavError {
    /// No such slide, presentation or key message (the name asked for, or the current position).
    NotFound(String),
    /// A goto naming neither a slide, a presentation nor a key message.
    NoTarget,
}

/// Resolves `action` from position `at`: next/previous skip hidden slides and honour
/// sub-presentations (a slide's sub-presentation is shown first, then the slide); goto jumps
/// anywhere.
pub fn resolve(m: &Manifest, at: Position<'_>, action: &NavAction) -> Result<Move, NavError> {
    let not_found = |what: &str| NavError::NotFound(what.to_string());
    let mut return_to = at.return_to.map(str::to_string);
    let mut returning = false;
    let target: String = match action {
        NavAction::Next | NavAction::Previous => {
            let deck = m.presentation(at.presentation).ok_or_else(|| not_found(at.presentation))?;
            let pos = deck.slides.iter().position(|s| s == at.slide).ok_or_else(|| not_found(at.slide))?;
            let step = |i: usize| if *action == NavAction::Next { i.checked_add(1) } else { i.checked_sub(1) };
            let mut i = step(pos);
            let mut found = None;
            while let Some(j) = i.filter(|j| *j < deck.slides.len()) {
                let sid = &deck.slides[j];
                if m.slide(sid).is_some_and(|s| !s.hidden) {
                    found = Some(sid.clone());
                    break;
                }
                i = step(j);
            }
            match (found, action, return_to.take()) {
                (Some(s), _, rt) => {
                    return_to = rt;
                    s
                }
                // End of a sub-presentation: continue with the slide that required it.
                (None, NavAction::Next, Some(parent)) => {
                    returning = true;
                    parent
                }
                // Next on the last slide, previous on the first: stay, record nothing.
                (None, _, _) => return Ok(Move::Stay),
            }
        }
        NavAction::Goto { slide, presentation, key_message } => {
            if let Some(s) = slide {
                m.slide(s).map(|s| s.id.clone()).ok_or_else(|| not_found(s))?
            } else if let Some(k) = key_message {
                slide_by_key_message(m, k).ok_or_else(|| not_found(k))?
            } else if let Some(p) = presentation {
                let deck = m.presentation(p).ok_or_else(|| not_found(p))?;
                first_visible(m, &deck.slides).or_else(|| deck.slides.first().cloned()).ok_or_else(|| not_found(p))?
            } else {
                return Err(NavError::NoTarget);
            }
        }
    };
    enter(m, action, target, None, return_to, returning)
}

/// Resolves `action` in a call that follows `order` (the rep's sequence as it was when the call
/// started) instead of the deck's authored order. From a slide of `order`, outside a
/// sub-presentation, next/previous go to the following/preceding slide of `order` (a slide the
/// manifest no longer has is passed over; stay at the ends), in the item's presentation, and
/// entering a slide by next shows its sub-presentation first exactly as [`resolve`] does. Inside
/// a sub-presentation (`at.return_to` set), on a slide not in `order`, and for goto: [`resolve`].
/// An empty `order` is the deck's.
pub fn resolve_in_sequence(m: &Manifest, at: Position<'_>, action: &NavAction, order: &[OrderedSlide]) -> Result<Move, NavError> {
    let forward = match action {
        NavAction::Next => true,
        NavAction::Previous => false,
        NavAction::Goto { .. } => return resolve(m, at, action),
    };
    let pos = order.iter().position(|o| o.slide_id == at.slide);
    let (Some(pos), None) = (pos, at.return_to) else { return resolve(m, at, action) };
    let known = |o: &&OrderedSlide| m.slide(&o.slide_id).is_some();
    let item = if forward { order[pos + 1..].iter().find(known) } else { order[..pos].iter().rev().find(known) };
    let Some(item) = item else { return Ok(Move::Stay) };
    // The item's presentation when it still lists the slide, else the slide's own.
    let presentation = m
        .presentation(&item.presentation_id)
        .filter(|p| p.slides.contains(&item.slide_id))
        .map(|p| p.id.clone())
        .or_else(|| presentation_of(m, &item.slide_id))
        .ok_or_else(|| NavError::NotFound(item.slide_id.clone()))?;
    enter(m, action, item.slide_id.clone(), Some(presentation), None, false)
}

/// Entering `target` by `action` with the call's pending return slide `return_to` (`returning`:
/// back from a sub-presentation to the slide that required it). Entering by next a slide whose
/// sub-presentation has not been shown shows that first, remembering `target`; reaching the
/// pending return slide clears it. `presentation` is `target`'s when it is entered (else the
/// first one listing the slide entered).
fn enter(
    m: &Manifest,
    action: &NavAction,
    target: String,
    presentation: Option<String>,
    mut return_to: Option<String>,
    returning: bool,
) -> Result<Move, NavError> {
    let mut dest = target.clone();
    let mut presentation = presentation;
    if *action == NavAction::Next && return_to.is_none() && !returning {
        if let Some(sub) = m.slide(&target).and_then(|s| s.sub_presentation.clone())
            && let Some(first) = m.presentation(&sub).and_then(|d| d.slides.first().cloned())
        {
            return_to = Some(target);
            dest = first;
            presentation = None;
        }
    } else if return_to.as_deref() == Some(dest.as_str()) {
        return_to = None;
    }
    let presentation = match presentation {
        Some(p) => p,
        None => presentation_of(m, &dest).ok_or_else(|| NavError::NotFound(dest.clone()))?,
    };
    Ok(Move::Enter { slide: dest, presentation, return_to })
}

/// The first slide of `ids` that is not hidden.
pub fn first_visible(m: &Manifest, ids: &[String]) -> Option<String> {
    ids.iter().find(|id| m.slide(id).is_some_and(|s| !s.hidden)).cloned()
}

/// The presentation a slide belongs to (the first one listing it).
pub fn presentation_of(m: &Manifest, slide: &str) -> Option<String> {
    m.presentations.iter().find(|p| p.slides.iter().any(|s| s == slide)).map(|p| p.id.clone())
}

/// The URL the shell loads for a slide (its bundle root when the slide is unknown).
pub fn slide_url(bundle_id: &str, m: &Manifest, slide: &str) -> String {
    let Some(s) = m.slide(slide) else { return crate::assets::asset_url(bundle_id, "") };
    let mut url = crate::assets::asset_url(bundle_id, s.entry.as_str());
    // A single-page framework's slide: its route (`?path=…` / `#…`) drives the framework.
    if let Some(route) = s.route.as_deref().filter(|r| Slide::route_is_valid(r)) {
        url.push_str(route);
    }
    url
}

/// Finds a slide by CRM key message, accepting Veeva's forms: the key message itself, its zip
/// file name (`CZ_Safety_01.zip`) or the slide's entry folder.
pub fn slide_by_key_message(m: &Manifest, key: &str) -> Option<String> {
    let k = key.trim().trim_end_matches(".zip");
    m.slides
        .iter()
        .find(|s| s.key_message.as_deref() == Some(k))
        .or_else(|| m.slides.iter().find(|s| s.entry.as_str().split('/').next() == Some(k)))
        .or_else(|| m.slides.iter().find(|s| s.id == k))
        .map(|s| s.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Deck `main`: s1, s2 (hidden), s3 (requires sub-presentation `isi`), s4.
    /// Hidden deck `isi`: i1, i2. Deck `empty` names only a hidden slide.
    fn manifest() -> Manifest {
        let slide = |id: &str, extra: serde_json::Value| {
            let mut s = json!({"id": id, "title": id, "entry": format!("{id}/index.html")});
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            s
        };
        serde_json::from_value(json!({
            "format_version": "1.0", "id": "b", "version": 1, "title": "t", "product": "p", "locale": "en-GB",
            "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "approval_code": "A",
            "presentations": [
                {"id": "main", "title": "Main", "slides": ["s1", "s2", "s3", "s4"]},
                {"id": "isi", "title": "ISI", "hidden": true, "slides": ["i1", "i2"]},
                {"id": "other", "title": "Other", "slides": ["h1", "o1"]},
            ],
            "slides": [
                slide("s1", json!({"key_message": "KM_One"})),
                slide("s2", json!({"hidden": true})),
                slide("s3", json!({"sub_presentation": "isi", "route": "#three"})),
                slide("s4", json!({})),
                slide("i1", json!({})),
                slide("i2", json!({})),
                slide("h1", json!({"hidden": true})),
                slide("o1", json!({})),
            ],
        }))
        .expect("test manifest")
    }

    fn at<'a>(slide: &'a str, presentation: &'a str, return_to: Option<&'a str>) -> Position<'a> {
        Position { slide, presentation, return_to }
    }

    fn enter(slide: &str, presentation: &str, return_to: Option<&str>) -> Move {
        Move::Enter { slide: slide.into(), presentation: presentation.into(), return_to: return_to.map(str::to_string) }
    }

    fn goto(slide: Option<&str>, presentation: Option<&str>, key_message: Option<&str>) -> NavAction {
        NavAction::Goto {
            slide: slide.map(str::to_string),
            presentation: presentation.map(str::to_string),
            key_message: key_message.map(str::to_string),
        }
    }

    #[test]
    fn next_and_previous_skip_hidden_slides_and_stay_at_the_ends() {
        let m = manifest();
        assert_eq!(resolve(&m, at("s4", "main", None), &NavAction::Previous), Ok(enter("s3", "main", None)));
        assert_eq!(resolve(&m, at("s3", "main", None), &NavAction::Previous), Ok(enter("s1", "main", None)));
        assert_eq!(resolve(&m, at("s1", "main", None), &NavAction::Previous), Ok(Move::Stay));
        assert_eq!(resolve(&m, at("s4", "main", None), &NavAction::Next), Ok(Move::Stay));
    }

    #[test]
    fn a_sub_presentation_is_shown_before_its_slide_then_the_deck_continues() {
        let m = manifest();
        // s1 -> s3 requires isi: i1 first, remembering s3.
        assert_eq!(resolve(&m, at("s1", "main", None), &NavAction::Next), Ok(enter("i1", "isi", Some("s3"))));
        assert_eq!(resolve(&m, at("i1", "isi", Some("s3")), &NavAction::Next), Ok(enter("i2", "isi", Some("s3"))));
        // End of isi: back to s3, not into isi again.
        assert_eq!(resolve(&m, at("i2", "isi", Some("s3")), &NavAction::Next), Ok(enter("s3", "main", None)));
        assert_eq!(resolve(&m, at("s3", "main", None), &NavAction::Next), Ok(enter("s4", "main", None)));
        // Previous at the start of the sub-presentation stays; the return slide is kept.
        assert_eq!(resolve(&m, at("i1", "isi", Some("s3")), &NavAction::Previous), Ok(Move::Stay));
        // Jumping to the parent directly clears the pending return.
        assert_eq!(resolve(&m, at("i1", "isi", Some("s3")), &goto(Some("s3"), None, None)), Ok(enter("s3", "main", None)));
    }

    fn order(items: &[(&str, &str)]) -> Vec<OrderedSlide> {
        items.iter().map(|(s, p)| OrderedSlide { slide_id: s.to_string(), presentation_id: p.to_string() }).collect()
    }

    #[test]
    fn in_a_sequence_next_and_previous_follow_its_order_and_stay_at_the_ends() {
        let m = manifest();
        // `gone` is no longer in the manifest: passed over.
        let o = order(&[("s4", "main"), ("gone", "main"), ("s1", "main"), ("s3", "main"), ("o1", "other")]);
        let nav =
            |slide, presentation, return_to, action: &NavAction| resolve_in_sequence(&m, at(slide, presentation, return_to), action, &o);
        assert_eq!(nav("s4", "main", None, &NavAction::Next), Ok(enter("s1", "main", None)));
        // s3 requires isi: shown first, then s3, then the sequence goes on.
        assert_eq!(nav("s1", "main", None, &NavAction::Next), Ok(enter("i1", "isi", Some("s3"))));
        assert_eq!(nav("i1", "isi", Some("s3"), &NavAction::Next), Ok(enter("i2", "isi", Some("s3"))));
        assert_eq!(nav("i2", "isi", Some("s3"), &NavAction::Next), Ok(enter("s3", "main", None)));
        assert_eq!(nav("s3", "main", None, &NavAction::Next), Ok(enter("o1", "other", None)));
        assert_eq!(nav("o1", "other", None, &NavAction::Next), Ok(Move::Stay));
        // Previous reverses, never opening a sub-presentation.
        assert_eq!(nav("o1", "other", None, &NavAction::Previous), Ok(enter("s3", "main", None)));
        assert_eq!(nav("s1", "main", None, &NavAction::Previous), Ok(enter("s4", "main", None)));
        assert_eq!(nav("s4", "main", None, &NavAction::Previous), Ok(Move::Stay));
        assert_eq!(nav("i1", "isi", Some("s3"), &NavAction::Previous), Ok(Move::Stay), "inside the sub-presentation: the deck");
        // Off the sequence: the deck; goto: unchanged.
        assert_eq!(nav("h1", "other", None, &NavAction::Next), Ok(enter("o1", "other", None)));
        assert_eq!(nav("s4", "main", None, &goto(Some("s1"), None, None)), Ok(enter("s1", "main", None)));
    }

    #[test]
    fn in_a_sequence_an_item_is_shown_in_its_presentation_when_that_lists_it() {
        let m = manifest();
        let o = order(&[("s4", "main"), ("i2", "isi"), ("o1", "main")]);
        assert_eq!(resolve_in_sequence(&m, at("s4", "main", None), &NavAction::Next, &o), Ok(enter("i2", "isi", None)));
        assert_eq!(resolve_in_sequence(&m, at("i2", "isi", None), &NavAction::Next, &o), Ok(enter("o1", "other", None)), "main lacks o1");
        for action in [NavAction::Next, NavAction::Previous] {
            for (slide, presentation, return_to) in [("s1", "main", None), ("s3", "main", None), ("i1", "isi", Some("s3"))] {
                let here = at(slide, presentation, return_to);
                assert_eq!(resolve_in_sequence(&m, here, &action, &[]), resolve(&m, here, &action), "no order: the deck");
            }
        }
    }

    #[test]
    fn goto_finds_slides_by_id_key_message_or_presentation() {
        let m = manifest();
        let here = at("s1", "main", None);
        // A hidden slide is reachable by jump; goto never opens a sub-presentation.
        assert_eq!(resolve(&m, here, &goto(Some("s2"), None, None)), Ok(enter("s2", "main", None)));
        assert_eq!(resolve(&m, here, &goto(Some("s3"), None, None)), Ok(enter("s3", "main", None)));
        for key in ["KM_One", "KM_One.zip", " s1 ", "s1"] {
            assert_eq!(resolve(&m, at("s4", "main", None), &goto(None, None, Some(key))), Ok(enter("s1", "main", None)), "{key:?}");
        }
        assert_eq!(resolve(&m, here, &goto(None, Some("other"), None)), Ok(enter("o1", "other", None)));
        assert_eq!(resolve(&m, here, &goto(Some("nope"), None, None)), Err(NavError::NotFound("nope".into())));
        assert_eq!(resolve(&m, here, &goto(None, Some("nope"), None)), Err(NavError::NotFound("nope".into())));
        assert_eq!(resolve(&m, here, &goto(None, None, None)), Err(NavError::NoTarget));
    }

    #[test]
    fn an_unknown_position_is_not_found() {
        let m = manifest();
        assert_eq!(resolve(&m, at("s1", "gone", None), &NavAction::Next), Err(NavError::NotFound("gone".into())));
        assert_eq!(resolve(&m, at("x", "main", None), &NavAction::Next), Err(NavError::NotFound("x".into())));
    }

    #[test]
    fn slide_urls_carry_the_route_of_single_page_slides() {
        let m = manifest();
        assert_eq!(slide_url("b", &m, "s1"), "/b/s1/index.html");
        assert_eq!(slide_url("b", &m, "s3"), "/b/s3/index.html#three");
        assert_eq!(slide_url("b", &m, "nope"), "/b/");
        assert_eq!(presentation_of(&m, "i2").as_deref(), Some("isi"));
        assert_eq!(first_visible(&m, &["h1".into(), "o1".into()]).as_deref(), Some("o1"));
    }
}
