//! One description per setting: the settings table of docs/configuration.md (key, default,
//! meaning) is compiled in and becomes `hotwire --help`, so the two cannot disagree; tests
//! check that every flag has a row, every row a flag, and every literal default the value the
//! broker really starts with.

use clap::{Command, CommandFactory};

use crate::config::Args;

/// docs/configuration.md, as built.
const CONFIGURATION_MD: &str = include_str!("../../docs/configuration.md");

/// The header of the settings table.
const TABLE_HEADER: &str = "| key | default | meaning |";

/// One row of the settings table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The TOML key (the flag is `--` and the key with dashes).
    pub key: String,
    /// The default, as documented (Markdown).
    pub default: String,
    /// What it does (Markdown).
    pub meaning: String,
}

/// The rows of the settings table, in order.
pub fn settings() -> Vec<Setting> {
    let mut lines = CONFIGURATION_MD.lines();
    if lines.by_ref().all(|line| line.trim() != TABLE_HEADER) {
        return Vec::new();
    }
    lines
        .skip(1) // |---|---|---|
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
            let [key, default, meaning] = cells[..] else {
                return None;
            };
            Some(Setting {
                key: key.trim().trim_matches('`').to_string(),
                default: default.trim().to_string(),
                meaning: meaning.trim().to_string(),
            })
        })
        .collect()
}

/// Markdown as plain text: code spans lose their backticks (their text is kept as it is),
/// links keep their text, bold loses its stars.
pub fn plain(markdown: &str) -> String {
    markdown
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.to_string()
            } else {
                unlink(part).replace("**", "")
            }
        })
        .collect()
}

/// `[text](target)` as `text`; a `[` that opens no link stays.
fn unlink(prose: &str) -> String {
    let mut out = String::with_capacity(prose.len());
    let mut rest = prose;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let link = after
            .find("](")
            .and_then(|mid| after[mid + 2..].find(')').map(|end| (mid, mid + 2 + end)));
        match link {
            Some((mid, end)) => {
                out.push_str(&after[..mid]);
                rest = &after[end + 1..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The command line, each setting's flag described by its row (with its default).
pub fn command() -> Command {
    let mut command = Args::command();
    for setting in settings() {
        let id = setting.key.as_str();
        if command.get_arguments().any(|a| a.get_id() == id) {
            let help = format!(
                "{} [default: {}]",
                plain(&setting.meaning),
                plain(&setting.default)
            );
            command = command.mut_arg(id, |arg| arg.help(help));
        }
    }
    command.after_help(
        "Every setting is also a TOML key (--config) and an environment variable \
         (HOTWIRE_<KEY>); docs/configuration.md has the same table.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::Parser;

    /// The flags that are settings (not `--config` itself).
    fn flags() -> Vec<String> {
        Args::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .filter(|long| long != "config" && long != "help" && long != "version")
            .collect()
    }

    #[test]
    fn every_flag_has_a_row_and_every_row_a_flag() {
        let rows: Vec<String> = settings().iter().map(|s| s.key.replace('_', "-")).collect();
        assert!(
            rows.len() > 50,
            "the settings table was not found: {rows:?}"
        );
        let flags = flags();
        let undocumented: Vec<&String> = flags.iter().filter(|f| !rows.contains(f)).collect();
        assert!(
            undocumented.is_empty(),
            "not in docs/configuration.md: {undocumented:?}"
        );
        let unknown: Vec<&String> = rows.iter().filter(|r| !flags.contains(r)).collect();
        assert!(
            unknown.is_empty(),
            "docs/configuration.md documents no such flag: {unknown:?}"
        );
    }

    #[test]
    fn documented_literal_defaults_are_the_real_ones() {
        let parse = |list: &[&str]| {
            let argv = std::iter::once("hotwire").chain(list.iter().copied());
            Config::load(Args::try_parse_from(argv).expect("flags parse"))
        };
        let defaults = format!("{:?}", parse(&[]).expect("defaults load"));
        let mut checked = 0;
        for setting in settings() {
            // Only a default that is one code span is a value; prose is not checked.
            let literal = setting
                .default
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'));
            // (`<listen>` and the like are placeholders, not values.)
            let Some(value) = literal.filter(|v| !v.contains('`') && !v.contains('<')) else {
                continue;
            };
            let flag = format!("--{}", setting.key.replace('_', "-"));
            let loaded = parse(&[&flag, value])
                .unwrap_or_else(|e| panic!("{flag} {value} (its documented default): {e}"));
            assert_eq!(
                format!("{loaded:?}"),
                defaults,
                "{flag}: the documented default {value} is not the default"
            );
            checked += 1;
        }
        assert!(checked > 40, "only {checked} literal defaults checked");
    }

    #[test]
    fn help_describes_each_flag_with_its_default() {
        let help = command().render_long_help().to_string();
        assert!(help.contains("address of the Kafka listener [default: 127.0.0.1:9092]"));
        assert!(help.contains("see cluster.md"), "links keep their text");
        for arg in command().get_arguments() {
            let text = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(
                !text.contains('`'),
                "Markdown left in --{:?}: {text}",
                arg.get_long()
            );
        }
    }

    #[test]
    fn markdown_becomes_plain_text() {
        assert_eq!(plain("`a` and [b](c.md#d) [e]"), "a and b [e]");
        assert_eq!(plain("**tiered** `x`"), "tiered x");
        assert_eq!(
            plain("`a[,b...][/c]`; see [d](d.md)"),
            "a[,b...][/c]; see d"
        );
    }
}
