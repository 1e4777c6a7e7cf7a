//! The overview's small chart: deliveries finished per minute over the last hour, as inline SVG drawn here (no script, nothing fetched), stretched to its column's width, with its scale written beside it.

use maud::{html, Markup};

/// Minutes shown: the last hour.
pub const MINUTES: usize = 60;
const WIDTH: usize = MINUTES * 3;
const HEIGHT: i64 = 32;

/// Succeeded and failed deliveries in each minute, oldest first.
pub type Buckets = [(i64, i64); MINUTES];

/// Bars scaled to the busiest minute: succeeded in green, failed in red on
/// top; the title (a tooltip, and what screen readers say) gives the totals.
/// The drawing stretches to the width it is given (`preserveAspectRatio`
/// none: bars widen, nothing is cut); the scale is HTML around it: the
/// busiest minute's count at the top, 0 at the bottom, and the time axis
/// (60 min ago, 30, now) under it.
pub fn per_minute(buckets: &Buckets) -> Markup {
    let busiest = buckets.iter().map(|(s, f)| s + f).max().unwrap_or(0).max(1);
    let (succeeded, failed): (i64, i64) = buckets.iter().fold((0, 0), |(s, f), b| (s + b.0, f + b.1));
    let scale = |n: i64| (n * HEIGHT + busiest - 1) / busiest;
    html! {
        div.chart {
        div.y { span.max { (busiest) "/min" } span.zero { "0" } }
        div.plot {
        svg.chart width="100%" height=(HEIGHT) viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) preserveAspectRatio="none" role="img" {
            title { (format!("last hour: {succeeded} succeeded, {failed} failed; busiest minute {busiest}")) }
            rect.axis x="0" y=(HEIGHT - 1) width=(WIDTH) height="1" {}
            @for (minute, (s, f)) in buckets.iter().enumerate() {
                @let (hs, hf) = (scale(*s), scale(s + f) - scale(*s));
                @if hs > 0 {
                    rect.ok x=(minute * 3) y=(HEIGHT - hs) width="2" height=(hs) {}
                }
                @if hf > 0 {
                    rect.bad x=(minute * 3) y=(HEIGHT - hs - hf) width="2" height=(hf) {}
                }
            }
        }
        div.x { span { "60 min ago" } span { "30" } span { "now" } }
        }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(svg: &str, class: &str) -> Vec<String> {
        svg.split("<rect").filter(|r| r.contains(&format!("class=\"{class}\""))).map(str::to_owned).collect()
    }

    #[test]
    fn bars_scale_to_the_busiest_minute() {
        let mut buckets = [(0, 0); MINUTES];
        buckets[0] = (10, 0);
        buckets[59] = (3, 2);
        let svg = per_minute(&buckets).into_string();
        let ok = bars(&svg, "ok");
        assert_eq!(ok.len(), 2, "{svg}");
        assert!(ok[0].contains("x=\"0\"") && ok[0].contains("height=\"32\""), "{}", ok[0]);
        assert!(ok[1].contains("x=\"177\"") && ok[1].contains("height=\"10\""), "{}", ok[1]);
        let bad = bars(&svg, "bad");
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("y=\"16\"") && bad[0].contains("height=\"6\""), "{}", bad[0]);
        assert!(svg.contains("last hour: 13 succeeded, 2 failed; busiest minute 10"));
    }

    #[test]
    fn the_chart_has_a_scale_and_takes_the_width_it_is_given() {
        let mut buckets = [(0, 0); MINUTES];
        buckets[30] = (7, 5);
        let html = per_minute(&buckets).into_string();
        assert!(html.contains("width=\"100%\"") && html.contains("preserveAspectRatio=\"none\""), "{html}");
        assert!(html.contains("<span class=\"max\">12/min</span>"), "the busiest minute tops the scale: {html}");
        assert!(html.contains("<span class=\"zero\">0</span>"), "{html}");
        for tick in ["60 min ago", "30", "now"] {
            assert!(html.contains(&format!("<span>{tick}</span>")), "{tick}: {html}");
        }
    }

    #[test]
    fn a_quiet_hour_draws_only_the_axis() {
        let svg = per_minute(&[(0, 0); MINUTES]).into_string();
        assert!(bars(&svg, "ok").is_empty() && bars(&svg, "bad").is_empty());
        assert!(svg.contains("class=\"axis\""));
    }
}
