//! Markdown to HTML for chat answers, safe by construction: the writer
//! below emits only its own small set of tags, every piece of text is
//! escaped, raw HTML in the source (from the model or the customer) is shown
//! as text, and links keep only `http`, `https` and `mailto` targets. No
//! sanitiser has to undo anything, and the same code runs on the server and
//! in the browser, so hydration sees identical markup.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Tags the writer can emit; tests check that nothing else ever appears.
pub const EMITTED_TAGS: &[&str] = &[
    "p",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "div",
    "button",
    "pre",
    "code",
    "ul",
    "ol",
    "li",
    "em",
    "strong",
    "del",
    "a",
    "br",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
];

pub fn render(source: &str) -> String {
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS;
    let mut out = String::with_capacity(source.len() + source.len() / 4);
    // A link whose target was refused still shows its text; this remembers
    // which closing `</a>` to skip.
    let mut links: Vec<bool> = Vec::new();
    let mut table_head = false;
    for event in Parser::new_ext(source, options) {
        match event {
            Event::Start(tag) => start(&mut out, tag, &mut links, &mut table_head),
            Event::End(tag) => end(&mut out, tag, &mut links, &mut table_head),
            Event::Text(text) => escape_into(&mut out, &text),
            Event::Code(code) => {
                out.push_str("<code>");
                escape_into(&mut out, &code);
                out.push_str("</code>");
            }
            // Raw HTML is content, not markup: show it as typed.
            Event::Html(html) | Event::InlineHtml(html) => escape_into(&mut out, &html),
            Event::SoftBreak => out.push('\n'),
            Event::HardBreak => out.push_str("<br>"),
            Event::Rule => out.push_str("<hr>"),
            Event::TaskListMarker(done) => out.push_str(if done { "☑ " } else { "☐ " }),
            Event::FootnoteReference(name) => escape_into(&mut out, &format!("[{name}]")),
            Event::InlineMath(m) | Event::DisplayMath(m) => escape_into(&mut out, &m),
        }
    }
    out
}

fn start(out: &mut String, tag: Tag<'_>, links: &mut Vec<bool>, table_head: &mut bool) {
    match tag {
        Tag::Paragraph => out.push_str("<p>"),
        // h1/h2 would shout inside a chat bubble
        Tag::Heading { level, .. } => out.push_str(heading(level).0),
        Tag::BlockQuote(_) => out.push_str("<blockquote>"),
        Tag::CodeBlock(kind) => {
            out.push_str(r#"<div class="code"><button type="button" class="copy" data-copy aria-label="Copy code">Copy</button><pre><code"#);
            if let CodeBlockKind::Fenced(lang) = kind {
                let lang: String =
                    lang.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+')).collect();
                if !lang.is_empty() {
                    out.push_str(&format!(r#" class="language-{lang}""#));
                }
            }
            out.push('>');
        }
        Tag::List(Some(first)) if first != 1 => out.push_str(&format!(r#"<ol start="{first}">"#)),
        Tag::List(Some(_)) => out.push_str("<ol>"),
        Tag::List(None) => out.push_str("<ul>"),
        Tag::Item => out.push_str("<li>"),
        Tag::Emphasis => out.push_str("<em>"),
        Tag::Strong => out.push_str("<strong>"),
        Tag::Strikethrough => out.push_str("<del>"),
        Tag::Link { dest_url, .. } => match safe_url(&dest_url) {
            Some(url) => {
                links.push(true);
                out.push_str(r#"<a href=""#);
                escape_into(out, url);
                out.push_str(r#"" target="_blank" rel="noopener noreferrer nofollow">"#);
            }
            None => links.push(false),
        },
        // Images from a model are a tracking and spoofing risk: the alt
        // text stays, the picture does not load.
        Tag::Image { .. } => out.push_str(r#"<span class="image-alt">"#),
        Tag::Table(_) => out.push_str("<table>"),
        Tag::TableHead => {
            *table_head = true;
            out.push_str("<thead><tr>");
        }
        Tag::TableRow => out.push_str("<tr>"),
        Tag::TableCell => out.push_str(if *table_head { "<th>" } else { "<td>" }),
        Tag::FootnoteDefinition(_)
        | Tag::HtmlBlock
        | Tag::MetadataBlock(_)
        | Tag::DefinitionList
        | Tag::DefinitionListTitle
        | Tag::DefinitionListDefinition
        | Tag::Superscript
        | Tag::Subscript => {}
    }
}

fn end(out: &mut String, tag: TagEnd, links: &mut Vec<bool>, table_head: &mut bool) {
    match tag {
        TagEnd::Paragraph => out.push_str("</p>"),
        TagEnd::Heading(level) => out.push_str(heading(level).1),
        TagEnd::BlockQuote(_) => out.push_str("</blockquote>"),
        TagEnd::CodeBlock => out.push_str("</code></pre></div>"),
        TagEnd::List(true) => out.push_str("</ol>"),
        TagEnd::List(false) => out.push_str("</ul>"),
        TagEnd::Item => out.push_str("</li>"),
        TagEnd::Emphasis => out.push_str("</em>"),
        TagEnd::Strong => out.push_str("</strong>"),
        TagEnd::Strikethrough => out.push_str("</del>"),
        // a refused link's text stays, without its closing tag
        TagEnd::Link if links.pop().unwrap_or(false) => out.push_str("</a>"),
        TagEnd::Image => out.push_str("</span>"),
        TagEnd::Table => out.push_str("</tbody></table>"),
        TagEnd::TableHead => {
            *table_head = false;
            out.push_str("</tr></thead><tbody>");
        }
        TagEnd::TableRow => out.push_str("</tr>"),
        TagEnd::TableCell => out.push_str(if *table_head { "</th>" } else { "</td>" }),
        _ => {}
    }
}

fn heading(level: HeadingLevel) -> (&'static str, &'static str) {
    match level {
        HeadingLevel::H1 | HeadingLevel::H2 | HeadingLevel::H3 => ("<h3>", "</h3>"),
        HeadingLevel::H4 => ("<h4>", "</h4>"),
        HeadingLevel::H5 => ("<h5>", "</h5>"),
        HeadingLevel::H6 => ("<h6>", "</h6>"),
    }
}

/// The link target if it is one a customer can safely follow. Schemes are
/// compared after removing what browsers ignore (whitespace and control
/// characters), so `java\tscript:` is caught too.
fn safe_url(url: &str) -> Option<&str> {
    let compact: String = url.chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect();
    let lower = compact.to_ascii_lowercase();
    let allowed = ["http://", "https://", "mailto:"].iter().any(|s| lower.starts_with(s));
    (allowed && compact == url).then_some(url)
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every `<` in the output opens or closes one of the writer's own tags
    /// with its own attributes (text is always escaped, so anything else
    /// would be injected markup), and every link is http(s) or mailto.
    fn assert_only_own_tags(html: &str) {
        const ATTRIBUTES: &[&str] = &["href", "target", "rel", "class", "type", "data-copy", "aria-label", "start"];
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            let close = rest[i..].find('>').map(|j| i + j).unwrap_or_else(|| panic!("unclosed tag in {html}"));
            let inside = &rest[i + 1..close];
            rest = &rest[close + 1..];
            let name: String =
                inside.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(EMITTED_TAGS.contains(&name.as_str()), "unexpected tag <{name} in {html}");
            // values are quoted and cannot contain a quote: drop them, keep names
            let mut names = String::new();
            for (k, part) in inside.split('"').enumerate() {
                if k % 2 == 0 {
                    names.push_str(part);
                    names.push(' ');
                } else if names.trim_end().ends_with("href=") {
                    let ok =
                        ["http://", "https://", "mailto:"].iter().any(|s| part.to_ascii_lowercase().starts_with(s));
                    assert!(ok, "unsafe link {part} in {html}");
                }
            }
            for attr in names.split_whitespace().skip(1) {
                let attr = attr.trim_end_matches('=');
                assert!(ATTRIBUTES.contains(&attr), "unexpected attribute {attr} in {html}");
            }
        }
    }

    #[test]
    fn renders_common_markdown() {
        let html = render("# Title\n\nSome **bold** and *em* and `x < y`.\n\n- one\n- two\n\n3. three\n");
        assert_eq!(
            html,
            "<h3>Title</h3><p>Some <strong>bold</strong> and <em>em</em> and <code>x &lt; y</code>.</p>\
             <ul><li>one</li><li>two</li></ul><ol start=\"3\"><li>three</li></ol>"
        );
    }

    #[test]
    fn code_blocks_get_a_copy_button_and_a_clean_language() {
        let html = render("```rust\" onmouseover=\"x\nfn main() {}\n```\n");
        assert!(html.starts_with(r#"<div class="code"><button type="button" class="copy""#), "{html}");
        assert!(html.contains(r#"<code class="language-rust">fn main() {}"#), "{html}");
        assert_only_own_tags(&html);
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let html = render("<img src=x onerror=alert(1)> and <script>alert(1)</script>");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert_only_own_tags(&html);
        let block = render("<div onclick=\"steal()\">\n<iframe src=\"https://evil\"></iframe>\n</div>\n");
        assert_only_own_tags(&block);
    }

    #[test]
    fn only_safe_links_survive() {
        let ok = render("[docs](https://example.com/a?b=1&c=\"2\")");
        assert_eq!(
            ok,
            "<p><a href=\"https://example.com/a?b=1&amp;c=&quot;2&quot;\" target=\"_blank\" \
             rel=\"noopener noreferrer nofollow\">docs</a></p>"
        );
        for bad in [
            "[click](javascript:alert(1))",
            "[click](JaVaScRiPt:alert(1))",
            "[click](<java\tscript:alert(1)>)",
            "[click](data:text/html;base64,PHNjcmlwdD4=)",
            "[click](vbscript:msgbox)",
            "<javascript:alert(1)>",
            "[click][r]\n\n[r]: javascript:alert(1)",
        ] {
            let html = render(bad);
            assert!(!html.contains("<a "), "{bad} → {html}");
            assert_only_own_tags(&html);
        }
        assert!(render("[mail](mailto:help@example.com)").contains("href=\"mailto:help@example.com\""));
    }

    #[test]
    fn images_do_not_load() {
        let html = render("![a cat](https://tracker.example/pixel.gif) ![x](javascript:alert(1))");
        assert_eq!(html, "<p><span class=\"image-alt\">a cat</span> <span class=\"image-alt\">x</span></p>");
    }

    #[test]
    fn tables_render() {
        let html = render("| a | b |\n|---|---|\n| 1 | <b>2</b> |\n");
        assert_eq!(
            html,
            "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>&lt;b&gt;2&lt;/b&gt;</td></tr></tbody></table>"
        );
    }

    #[test]
    fn a_half_streamed_answer_renders() {
        // streaming re-renders partial text: unclosed constructs must not break
        for partial in ["```py\nprint(", "**bold", "[link](https://exa", "| a |\n|--", "<img src=x onerr"] {
            assert_only_own_tags(&render(partial));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn no_input_makes_foreign_markup(s in "(\\PC|[<>\"'`*_\\[\\]()!#|:\n -]){0,200}") {
            assert_only_own_tags(&render(&s));
        }

        #[test]
        fn html_looking_input_stays_inert(
            tag in "(img|script|iframe|svg|a|div|object|embed|style|math)",
            attr in "(onerror|onload|onclick|href|src|style|srcdoc)",
            value in "(javascript:alert\\(1\\)|x|data:text/html,1|\"><script>1</script>)",
        ) {
            let src = format!("<{tag} {attr}=\"{value}\">hi</{tag}> [l]({value}) <{tag} {attr}={value}>");
            assert_only_own_tags(&render(&src));
        }
    }
}
