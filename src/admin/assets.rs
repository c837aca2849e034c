//! The console's files, embedded in the binary at build time: nothing is fetched from
//! anywhere at run time, and the page needs no build step.

use bytes::Bytes;

pub(super) struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    text: &'static str,
}

impl Asset {
    pub(super) fn body(&self) -> Bytes {
        Bytes::from_static(self.text.as_bytes())
    }
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            text: include_str!(concat!("assets/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/admin/", "index.html", "text/html; charset=utf-8"),
    asset!(
        "/admin/assets/console.css",
        "console.css",
        "text/css; charset=utf-8"
    ),
    asset!("/admin/assets/icon.svg", "icon.svg", "image/svg+xml"),
    asset!("/admin/assets/js/app.js", "js/app.js", JS),
    asset!("/admin/assets/js/api.js", "js/api.js", JS),
    asset!("/admin/assets/js/dom.js", "js/dom.js", JS),
    asset!("/admin/assets/js/log.js", "js/log.js", JS),
    asset!(
        "/admin/assets/js/subscriptions.js",
        "js/subscriptions.js",
        JS
    ),
    asset!("/admin/assets/js/deliveries.js", "js/deliveries.js", JS),
    asset!("/admin/assets/js/keys.js", "js/keys.js", JS),
    asset!("/admin/assets/js/charts.js", "js/charts.js", JS),
];

pub(super) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `import … from './x.js'` of a module, and every `src`/`href` of the page, is an
    /// embedded asset: a missing one would only show as a blank page in a browser.
    #[test]
    fn every_reference_is_embedded() {
        for asset in ASSETS {
            for (i, _) in asset.text.match_indices("from './") {
                let rest = &asset.text[i + "from './".len()..];
                let file = &rest[..rest.find('\'').expect("closing quote")];
                let path = format!("/admin/assets/js/{file}");
                assert!(find(&path).is_some(), "{} imports {path}", asset.path);
            }
            for attr in ["src=\"", "href=\""] {
                for (i, _) in asset.text.match_indices(attr) {
                    let rest = &asset.text[i + attr.len()..];
                    let target = &rest[..rest.find('"').expect("closing quote")];
                    if target.starts_with("/admin/") {
                        assert!(find(target).is_some(), "{} refers to {target}", asset.path);
                    }
                }
            }
        }
    }

    /// The Content-Security-Policy allows no inline script or style: the page must not need any.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = find("/admin/").unwrap().text;
        for (i, _) in page.match_indices("<script") {
            let tag = &page[i..i + page[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!page.contains("<style"), "inline <style> element");
        assert!(!page.contains(" style="), "inline style attribute");
        assert!(!page.contains(" onclick="), "inline event handler");
    }
}
