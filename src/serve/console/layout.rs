//! The page shell every console page shares: navigation, the inline style sheet, notices, and links built with their query strings encoded.

use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#cfe0ff;text-decoration:none}header b{font-size:16px}
main{padding:12px 16px}
table{border-collapse:collapse;background:#fff;width:100%;margin:8px 0}
th,td{border-bottom:1px solid #e3e6eb;padding:4px 8px;text-align:left;vertical-align:top}
td.n{white-space:nowrap}td.actions{white-space:nowrap}
th{background:#eef0f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#fff;border:1px solid #e3e6eb;padding:8px;overflow:auto;max-height:420px;white-space:pre-wrap;word-break:break-all;margin:4px 0}
.notice{background:#e7f6ea;border:1px solid #9fd3a9;padding:6px 10px;margin:8px 0}
.error{background:#fdecec;border:1px solid #e6a3a3;padding:6px 10px;margin:8px 0}
.st{padding:1px 6px;border-radius:3px;font-size:12px;background:#e3e6eb}.st.paused{white-space:nowrap}
.st.succeeded,.st.enabled{background:#d6f0dc}.st.failed,.st.disabled,.st.invalid{background:#f7d4d4}
.st.retrying,.st.paused{background:#fbeccb}.st.pending{background:#dde8fb}
form.inline{display:inline}button{font:inherit;padding:2px 8px;cursor:pointer}
form.search{display:flex;flex-wrap:wrap;gap:8px;align-items:end;background:#fff;padding:8px;border:1px solid #e3e6eb}
form.search label{display:flex;flex-direction:column;font-size:12px}
div.chart{display:flex;gap:4px;min-width:240px}div.chart div.plot{flex:1;min-width:0}
div.chart div.y{display:flex;flex-direction:column;justify-content:space-between;font-size:10px;color:#6b7280;text-align:right;height:32px;white-space:nowrap}
div.chart div.x{display:flex;justify-content:space-between;font-size:10px;color:#6b7280}
td.chart{width:30%}svg.chart{display:block}
svg.chart rect.ok{fill:#3c9a5f}svg.chart rect.bad{fill:#d04848}svg.chart rect.axis{fill:#c4c9d2}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;background:#fff;padding:8px;border:1px solid #e3e6eb}
dt{color:#5a6270}dd{margin:0}
.muted{color:#6b7280}
form.endpoint{display:flex;flex-direction:column;gap:8px;background:#fff;padding:8px;border:1px solid #e3e6eb;max-width:760px}
form.endpoint label{display:flex;flex-direction:column;gap:2px}form.endpoint label.check{flex-direction:row;align-items:center}
form.endpoint label>span:first-child{font-size:12px;color:#5a6270}
.field-error{color:#a12b2b;font-size:12px}.danger{color:#a12b2b}
div.actions{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
"#;

/// A whole page. `notice` is shown above the content.
pub fn page(title: &str, notice: Option<Markup>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tailhook" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    b { "tailhook" }
                    a href="/" { "Endpoints" }
                    a href="/deliveries" { "Deliveries" }
                    form.inline method="get" action="/deliveries" {
                        input type="search" name="event_id" placeholder="event id (webhook-id)" size="38" aria-label="event id";
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(notice) = notice { (notice) }
                    (content)
                }
            }
        }
    }
}

/// `path?k=v&...` with the values percent-encoded; empty values left out.
pub fn link(path: &str, query: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

/// A state or status as a coloured label.
pub fn label(class: &str, text: &str) -> Markup {
    html! { span class=(format!("st {class}")) { (text) } }
}

/// A hidden field with the CSRF token, in every form that POSTs.
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_their_values() {
        assert_eq!(link("/deliveries", &[]), "/deliveries");
        assert_eq!(
            link("/deliveries", &[("endpoint", "a&b=<c>"), ("status", "")]),
            "/deliveries?endpoint=a%26b%3D%3Cc%3E"
        );
    }

    #[test]
    fn text_is_escaped_everywhere() {
        let html = page("<script>x</script>", Some(html! { p { "<u>" } }), label("a\"b", "<i>")).into_string();
        assert!(!html.contains("<script>x") && !html.contains("<u>") && !html.contains("<i>"), "{html}");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;") && html.contains("class=\"st a&quot;b\""), "{html}");
    }
}
