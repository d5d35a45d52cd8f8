//! Reads rule files, compiles each YAML document to a [`Rule`], and reports every error found
//! with its file, line and column, so one run of the loader shows all that needs fixing.
//!
//! Line numbers: YAML syntax and shape errors carry serde-saphyr's exact position. Errors found
//! after deserializing (a bad modifier, an unknown selection in the condition) come from a
//! JSON tree that has no positions, so the loader finds the offending key by searching the
//! document text: the first line at or after the selection's name whose text starts with the
//! key. That is exact for ordinary rules and can point at an earlier line when the same key
//! text appears twice in one selection; the key itself is always named in the message.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::rule::behaviour::{
    Behaviour, BehaviourError, new_value, sequence, spike, threshold, travel,
};
use crate::rule::condition::{Condition, ConditionError};
use crate::rule::group::GroupBy;
use crate::rule::matcher::{FieldMatcher, KeywordMatcher, MatchError, RuleValue};
use crate::rule::spec::RuleSpec;
use crate::rule::{Rule, RuleKind, Selection, Severity, duration};

/// Why a rule file or document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The directory or a file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The path that failed.
        file: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed or does not have the rule shape (an unknown key, a missing
    /// `title`, a list where a string belongs).
    #[error("{file}:{line}:{column}: {}{message}", rule_label(.rule_id.as_deref()))]
    Yaml {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// The rule id when the document has a readable one.
        rule_id: Option<String>,
        /// serde-saphyr's message (names the key for unknown and missing fields).
        message: String,
    },
    /// A behaviour or alert key whose value does not compile (a bad duration, a zero count, a
    /// step condition naming no selection), or two behaviours in one rule.
    #[error("{file}:{line}:{column}: rule `{rule_id}`: `{key}`: {detail}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the key (found by text search, see the module docs).
        line: u64,
        /// 1-based column of the key.
        column: u64,
        /// The rule id.
        rule_id: String,
        /// The dotted key (`threshold.window`, `alert.dedup`).
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// Neither or both of `severity` and `level`.
    #[error("{file}:{line}: rule `{rule_id}`: {detail}")]
    Severity {
        /// The file.
        file: String,
        /// 1-based line of the rule's `id`.
        line: u64,
        /// The rule id.
        rule_id: String,
        /// What is wrong.
        detail: &'static str,
    },
    /// A `detection` entry with the wrong shape (a nested map as a value, an empty selection,
    /// a missing condition).
    #[error("{file}:{line}:{column}: rule `{rule_id}`: `{key}`: {detail}")]
    Detection {
        /// The file.
        file: String,
        /// 1-based line of the key (found by text search, see the module docs).
        line: u64,
        /// 1-based column of the key.
        column: u64,
        /// The rule id.
        rule_id: String,
        /// The selection name or selection key at fault.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A selection key or value that does not compile (unknown modifier, bad regex or CIDR).
    #[error("{file}:{line}:{column}: rule `{rule_id}`: {source}")]
    Match {
        /// The file.
        file: String,
        /// 1-based line of the key (found by text search, see the module docs).
        line: u64,
        /// 1-based column of the key.
        column: u64,
        /// The rule id.
        rule_id: String,
        /// The matcher's error; it names the key.
        #[source]
        source: MatchError,
    },
    /// A condition that does not parse against the rule's selections; the column inside the
    /// condition string is in the source error.
    #[error("{file}:{line}: rule `{rule_id}`: condition `{condition}`: {source}")]
    Condition {
        /// The file.
        file: String,
        /// 1-based line of the `condition` key.
        line: u64,
        /// The rule id.
        rule_id: String,
        /// The condition text at fault.
        condition: String,
        /// The parser's error, with the column.
        #[source]
        source: ConditionError,
    },
    /// A rule directory (searched at every depth) holds no `*.yml` or `*.yaml` file.
    #[error("{dir}: no rule files (*.yml, *.yaml) in it or its subdirectories")]
    NoRuleFiles {
        /// The directory as given.
        dir: String,
    },
    /// Two rules share an id.
    #[error("{file}:{line}: duplicate rule id `{id}`, first defined at {first}")]
    DuplicateId {
        /// The later file.
        file: String,
        /// 1-based line of the later `id`.
        line: u64,
        /// The id.
        id: String,
        /// `file:line` of the first definition.
        first: String,
    },
}

impl RuleError {
    /// A stable label for metrics and lint output.
    pub fn kind(&self) -> &'static str {
        match self {
            RuleError::Io { .. } => "io",
            RuleError::Yaml { .. } => "yaml",
            RuleError::Invalid { .. } => "invalid",
            RuleError::Severity { .. } => "severity",
            RuleError::Detection { .. } => "detection",
            RuleError::Match { source, .. } => source.kind(),
            RuleError::Condition { .. } => "condition",
            RuleError::DuplicateId { .. } => "duplicate_id",
            RuleError::NoRuleFiles { .. } => "no_rule_files",
        }
    }
}

fn rule_label(id: Option<&str>) -> String {
    id.map(|id| format!("rule `{id}`: ")).unwrap_or_default()
}

/// Loads every rule file under `dir` (see [`rule_files`]), in path order. Rule ids must be
/// unique across all files. Returns all rules, or every error from every file; a directory
/// holding no rule file at all is an error too, since loading it would run no rules while
/// looking like success.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>, Vec<RuleError>> {
    load_files(&rule_files(dir)?)
}

/// Loads the given rule files, in the order given, with ids unique across them.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut loader = Loader::default();
    for path in paths {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => loader.load_file(&text, &file),
            Err(source) => loader.errors.push(RuleError::Io { file, source }),
        }
    }
    loader.finish()
}

/// Every `*.yml` and `*.yaml` file under `dir` at any depth, sorted by path. Entries whose name
/// starts with `.` (`.git`, `.github`, editor files) are skipped. Symbolic links are followed,
/// but a directory already walked (by its canonical path) is not entered again, so a link
/// loop ends instead of recursing. Unreadable directories are reported together; no rule file
/// at all is [`RuleError::NoRuleFiles`].
pub fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, Vec<RuleError>> {
    let io = |path: &Path, source| RuleError::Io { file: path.display().to_string(), source };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut walked = HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        match std::fs::canonicalize(&current) {
            Ok(real) => {
                if !walked.insert(real) {
                    continue;
                }
            }
            Err(e) => {
                errors.push(io(&current, e));
                continue;
            }
        }
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) => {
                errors.push(io(&current, e));
                continue;
            }
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    errors.push(io(&current, e));
                    continue;
                }
            };
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            // `metadata` follows links: a link to a directory is walked, a dangling one is
            // skipped like any other non-file.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => pending.push(path),
                Ok(m) if m.is_file() && is_rule_file(&path) => files.push(path),
                Ok(_) | Err(_) => {}
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if files.is_empty() {
        return Err(vec![RuleError::NoRuleFiles { dir: dir.display().to_string() }]);
    }
    files.sort();
    Ok(files)
}

fn is_rule_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "yml" || x == "yaml")
}

/// Loads the rule documents in `text` (separated by lines that are exactly `---`), naming
/// `file` in errors.
pub fn load_str(text: &str, file: &str) -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut loader = Loader::default();
    loader.load_file(text, file);
    loader.finish()
}

/// Warnings about a rule that compiles but is probably not what its author meant.
pub fn lint(rule: &Rule) -> Vec<String> {
    let mut out = Vec::new();
    let referenced = rule.condition().referenced();
    for (i, name) in rule.selection_names().iter().enumerate() {
        if referenced.binary_search(&i).is_err() {
            out.push(format!(
                "rule `{}`: selection `{name}` is not used by the condition",
                rule.id
            ));
        }
    }
    match rule.condition().always() {
        Some(true) => out.push(format!(
            "rule `{}`: the condition is always true: the rule matches every event",
            rule.id
        )),
        Some(false) => out.push(format!(
            "rule `{}`: the condition is never true: the rule can never match",
            rule.id
        )),
        None => {}
    }
    out
}

/// Accumulates rules and errors over several files so that duplicate ids are caught across
/// them.
#[derive(Default)]
struct Loader {
    rules: Vec<Rule>,
    errors: Vec<RuleError>,
    /// Rule id -> `file:line` of its first definition.
    seen: HashMap<String, String>,
}

impl Loader {
    fn finish(self) -> Result<Vec<Rule>, Vec<RuleError>> {
        if self.errors.is_empty() { Ok(self.rules) } else { Err(self.errors) }
    }

    fn load_file(&mut self, text: &str, file: &str) {
        for doc in split_documents(text) {
            self.load_document(&doc, file);
        }
    }

    /// `doc` is one document padded with blank lines in place of the file's earlier lines, so
    /// every position serde-saphyr reports, and every line found by search, is a file line.
    fn load_document(&mut self, doc: &str, file: &str) {
        // First pass into a plain tree: skip empty documents, learn the id for error
        // messages, and see the top-level keys serde will ignore.
        let tree: Value = match serde_saphyr::from_str(doc) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(yaml_error(&e, file, None));
                return;
            }
        };
        if tree.is_null() {
            return;
        }
        let id = tree.get("id").and_then(Value::as_str).map(str::to_owned);
        // serde ignores unknown top-level keys (Sigma's custom attributes); a misspelt rule
        // key is refused here, with its place.
        for key in tree.as_object().map(|m| m.keys()).into_iter().flatten() {
            if let Some(known) = crate::rule::spec::near_miss(key) {
                let line = find_top_key(doc, key).unwrap_or(1);
                self.errors.push(RuleError::Yaml {
                    file: file.to_owned(),
                    line,
                    column: 1,
                    rule_id: id.clone(),
                    message: format!(
                        "unknown field `{key}`: did you mean `{known}`? (other unknown keys are \
                         taken as Sigma custom attributes and ignored)"
                    ),
                });
            }
        }
        let spec: RuleSpec = match serde_saphyr::from_str(doc) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(yaml_error(&e, file, id));
                return;
            }
        };
        let id_line = find_top_key(doc, "id").unwrap_or(1);
        let origin = format!("{file}:{id_line}");
        let rule_id = spec.id.clone();
        let ctx = Ctx { file, doc, rule_id: &rule_id };
        if let Some(mut rule) = ctx.compile(spec, id_line, origin.clone(), &mut self.errors) {
            // The document's text, padding aside: a reload keeps the state of a rule whose
            // text did not change, wherever it moved in its file.
            let mut h = crate::alert::Fnv::new();
            h.feed(doc.trim_start_matches('\n').as_bytes());
            rule.digest = h.finish();
            if let Some(first) = self.seen.get(&rule.id) {
                self.errors.push(RuleError::DuplicateId {
                    file: file.to_owned(),
                    line: id_line,
                    id: rule.id.clone(),
                    first: first.clone(),
                });
            } else {
                self.seen.insert(rule.id.clone(), origin);
                self.rules.push(rule);
            }
        }
    }
}

/// What every compile error names.
struct Ctx<'a> {
    file: &'a str,
    doc: &'a str,
    rule_id: &'a str,
}

impl Ctx<'_> {
    /// Compiles a deserialized spec; pushes every error found and returns `None` if there was
    /// any, so a rule is either whole or absent.
    fn compile(
        &self,
        spec: RuleSpec,
        id_line: u64,
        origin: String,
        errors: &mut Vec<RuleError>,
    ) -> Option<Rule> {
        let before = errors.len();
        let severity = match (spec.severity, spec.level) {
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => {
                errors.push(self.severity_error(id_line, "missing `severity` (or Sigma `level`)"));
                Severity::Info
            }
            (Some(_), Some(_)) => {
                errors.push(self.severity_error(id_line, "give `severity` or `level`, not both"));
                Severity::Info
            }
        };

        let detection_line = find_top_key(self.doc, "detection").unwrap_or(id_line);
        let mut names = Vec::new();
        let mut selections = Vec::new();
        for (name, value) in spec.detection.iter().filter(|(k, _)| *k != "condition") {
            let at = self.find(name, detection_line);
            names.push(name.clone());
            if let Some(sel) = self.selection(name, value, at.0, errors) {
                selections.push(sel);
            }
        }

        let condition = self.condition(spec.detection.get("condition"), &names, detection_line);
        let condition = match condition {
            Ok(c) => Some(c),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let behaviour = self.behaviour(&spec, &refs, id_line, errors);
        let alert = spec.alert.clone().unwrap_or_default();
        let dedup = match alert.dedup.as_deref().map(duration::parse) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                let line = find_top_key(self.doc, "alert").unwrap_or(id_line);
                errors.push(self.invalid(line, "alert.dedup", e.to_string()));
                None
            }
        };
        if !alert.group_by.is_empty() && behaviour.is_some() {
            let line = find_top_key(self.doc, "alert").unwrap_or(id_line);
            let detail = "a rule with a behaviour groups by the behaviour's `group_by`";
            errors.push(self.invalid(line, "alert.group_by", detail));
        }
        if spec.kind == RuleKind::Policy {
            // A policy judges each finding on its own: nothing accumulates across findings.
            if let Some(b) = &behaviour {
                let line = find_top_key(self.doc, b.name()).unwrap_or(id_line);
                errors.push(self.invalid(line, b.name(), "a policy takes no behaviour"));
            }
        } else if spec.monitor.is_some() {
            let line = find_top_key(self.doc, "monitor").unwrap_or(id_line);
            errors.push(self.invalid(
                line,
                "monitor",
                "only a `kind: policy` document is monitored",
            ));
        }
        if errors.len() > before {
            return None;
        }
        let condition_text = match spec.detection.get("condition") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or ")
            }
            _ => String::new(),
        };
        Some(Rule {
            id: spec.id,
            title: spec.title,
            severity,
            tags: spec.tags,
            kind: spec.kind,
            monitor: spec.monitor.unwrap_or(true),
            group_by: GroupBy::new(&alert.group_by),
            alert,
            dedup,
            behaviour,
            condition_text,
            tests: spec.tests,
            origin,
            file: std::path::PathBuf::from(self.file),
            names,
            selections,
            condition: condition?,
            source: crate::rule::logsource::LogSource::compile(spec.logsource.as_ref()),
            digest: 0,
        })
    }

    /// Compiles the rule's behaviour block, if any; at most one is allowed.
    fn behaviour(
        &self,
        spec: &RuleSpec,
        selections: &[&str],
        id_line: u64,
        errors: &mut Vec<RuleError>,
    ) -> Option<Behaviour> {
        type Compiled = Result<Behaviour, BehaviourError>;
        let mut found: Vec<(&'static str, Compiled)> = Vec::new();
        if let Some(b) = &spec.threshold {
            found.push(("threshold", threshold::Config::compile(b).map(Behaviour::Threshold)));
        }
        if let Some(b) = &spec.sequence {
            let c = sequence::Config::compile(b, selections).map(Behaviour::Sequence);
            found.push(("sequence", c));
        }
        if let Some(b) = &spec.travel {
            found.push(("travel", travel::Config::compile(b).map(Behaviour::Travel)));
        }
        if let Some(b) = &spec.spike {
            found.push(("spike", spike::Config::compile(b).map(Behaviour::Spike)));
        }
        if let Some(b) = &spec.new_value {
            found.push(("new_value", new_value::Config::compile(b).map(Behaviour::NewValue)));
        }
        if found.len() > 1 {
            let keys: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
            let line = find_top_key(self.doc, keys[1]).unwrap_or(id_line);
            let detail = format!("at most one behaviour per rule, found {}", keys.join(", "));
            errors.push(self.invalid(line, keys[1], detail));
            return None;
        }
        let (name, compiled) = found.pop()?;
        match compiled {
            Ok(b) => Some(b),
            Err(e) => {
                let top = find_top_key(self.doc, name).unwrap_or(id_line);
                // The failing key's own line when it is written under the block.
                let leaf = e.key.split(['.', '[']).next().unwrap_or(&e.key);
                let (line, column) = find_key(self.doc, leaf, top).unwrap_or((top, 1));
                errors.push(RuleError::Invalid {
                    file: self.file.to_owned(),
                    line,
                    column,
                    rule_id: self.rule_id.to_owned(),
                    key: format!("{name}.{}", e.key),
                    detail: e.detail,
                });
                None
            }
        }
    }

    fn invalid(&self, line: u64, key: &str, detail: impl Into<String>) -> RuleError {
        RuleError::Invalid {
            file: self.file.to_owned(),
            line,
            column: 1,
            rule_id: self.rule_id.to_owned(),
            key: key.to_owned(),
            detail: detail.into(),
        }
    }

    fn severity_error(&self, line: u64, detail: &'static str) -> RuleError {
        RuleError::Severity {
            file: self.file.to_owned(),
            line,
            rule_id: self.rule_id.to_owned(),
            detail,
        }
    }

    fn detection_error(&self, at: (u64, u64), key: &str, detail: impl Into<String>) -> RuleError {
        RuleError::Detection {
            file: self.file.to_owned(),
            line: at.0,
            column: at.1,
            rule_id: self.rule_id.to_owned(),
            key: key.to_owned(),
            detail: detail.into(),
        }
    }

    /// Line and column of `key` at or after `from`, or the start of line `from` if the search
    /// misses (a key spelled differently in the text, e.g. with escapes).
    fn find(&self, key: &str, from: u64) -> (u64, u64) {
        find_key(self.doc, key, from).unwrap_or((from, 1))
    }

    /// Compiles one named selection; `line` is the line of its name.
    fn selection(
        &self,
        name: &str,
        value: &Value,
        line: u64,
        errors: &mut Vec<RuleError>,
    ) -> Option<Selection> {
        let at = self.find(name, line);
        match value {
            // Sigma writes a keyword list whose keywords must all occur as a map from the
            // modifier alone: `keywords: {'|all': [a, b]}`.
            Value::Object(map) if map.keys().any(|k| k.starts_with('|')) => {
                self.keyword_all(name, map, line, errors)
            }
            Value::Object(map) => self.fields(name, map, line, errors).map(Selection::Fields),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                let mut maps = Vec::new();
                for item in items.iter().filter_map(Value::as_object) {
                    maps.push(self.fields(name, item, line, errors));
                }
                maps.into_iter().collect::<Option<Vec<_>>>().map(Selection::AnyOf)
            }
            Value::Array(items) if !items.is_empty() => {
                let Some(values) = scalars(value) else {
                    let detail = "a list must hold only maps or only keywords (scalars)";
                    errors.push(self.detection_error(at, name, detail));
                    return None;
                };
                match KeywordMatcher::compile(&values) {
                    Ok(k) => Some(Selection::Keywords(k)),
                    Err(source) => {
                        errors.push(self.match_error(at, source));
                        None
                    }
                }
            }
            _ => {
                let detail = "a selection must be a map, a list of maps or a list of keywords";
                errors.push(self.detection_error(at, name, detail));
                None
            }
        }
    }

    /// Compiles a keyword selection written as `{'|all': [keywords]}`: every keyword must
    /// occur. `all` is the only modifier a keyword list takes, and the key must be alone.
    fn keyword_all(
        &self,
        name: &str,
        map: &serde_json::Map<String, Value>,
        line: u64,
        errors: &mut Vec<RuleError>,
    ) -> Option<Selection> {
        let mut keys = map.iter();
        let (Some((key, value)), None) = (keys.next(), keys.next()) else {
            let detail = "a keyword list (`'|all': [...]`) must be the only key of its selection";
            errors.push(self.detection_error(self.find(name, line), name, detail));
            return None;
        };
        let at = self.find(key, line);
        if key != "|all" {
            let modifier = key.trim_start_matches('|').to_owned();
            let source = MatchError::UnknownModifier { key: key.clone(), modifier };
            errors.push(self.match_error(at, source));
            return None;
        }
        let Some(values) = scalars(value) else {
            let detail = "value must be a scalar or a list of scalars";
            errors.push(self.detection_error(at, key, detail));
            return None;
        };
        match KeywordMatcher::compile_all(&values) {
            Ok(k) => Some(Selection::Keywords(k)),
            Err(source) => {
                errors.push(self.match_error(at, source));
                None
            }
        }
    }

    /// Compiles a `field|modifiers: values` map (all keys must hold).
    fn fields(
        &self,
        name: &str,
        map: &serde_json::Map<String, Value>,
        line: u64,
        errors: &mut Vec<RuleError>,
    ) -> Option<Vec<FieldMatcher>> {
        if map.is_empty() {
            errors.push(self.detection_error(self.find(name, line), name, "empty selection"));
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in map {
            let at = self.find(key, line);
            if key.starts_with('|') {
                // Only reached inside a list of maps: a keyword list stands alone.
                let detail = "a keyword list (`'|all': [...]`) must be a selection of its own";
                errors.push(self.detection_error(at, key, detail));
                ok = false;
                continue;
            }
            let Some(values) = scalars(value) else {
                let detail = "value must be a scalar or a list of scalars";
                errors.push(self.detection_error(at, key, detail));
                ok = false;
                continue;
            };
            match FieldMatcher::compile(key, &values) {
                Ok(m) => out.push(m),
                Err(source) => {
                    errors.push(self.match_error(at, source));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn match_error(&self, at: (u64, u64), source: MatchError) -> RuleError {
        RuleError::Match {
            file: self.file.to_owned(),
            line: at.0,
            column: at.1,
            rule_id: self.rule_id.to_owned(),
            source,
        }
    }

    /// Parses `condition` (a string, or a list of strings meaning their OR). Each string is
    /// parsed on its own first so that error columns point into the text the author wrote.
    fn condition(
        &self,
        value: Option<&Value>,
        names: &[String],
        detection_line: u64,
    ) -> Result<Condition, Vec<RuleError>> {
        let at = self.find("condition", detection_line);
        let texts: Vec<&str> = match value {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) if !items.is_empty() => {
                match items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                    Some(t) => t,
                    None => {
                        let detail = "a condition list must hold only strings";
                        return Err(vec![self.detection_error(at, "condition", detail)]);
                    }
                }
            }
            None => {
                let detail = "detection has no `condition`";
                return Err(vec![self.detection_error(at, "detection", detail)]);
            }
            Some(_) => {
                let detail = "must be a string or a list of strings";
                return Err(vec![self.detection_error(at, "condition", detail)]);
            }
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for text in &texts {
            match Condition::parse(text, &names) {
                Ok(c) => parsed.push(c),
                Err(source) => errors.push(RuleError::Condition {
                    file: self.file.to_owned(),
                    line: at.0,
                    rule_id: self.rule_id.to_owned(),
                    condition: (*text).to_owned(),
                    source,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if parsed.len() == 1 {
            return Ok(parsed.remove(0));
        }
        let joined = texts.iter().map(|t| format!("({t})")).collect::<Vec<_>>().join(" or ");
        Condition::parse(&joined, &names).map_err(|source| {
            vec![RuleError::Condition {
                file: self.file.to_owned(),
                line: at.0,
                rule_id: self.rule_id.to_owned(),
                condition: joined.clone(),
                source,
            }]
        })
    }
}

/// A selection value as rule scalars: one scalar, or a list of scalars. `None` for nested
/// maps or lists.
fn scalars(value: &Value) -> Option<Vec<RuleValue>> {
    fn one(v: &Value) -> Option<RuleValue> {
        Some(match v {
            Value::Null => RuleValue::Null,
            Value::Bool(b) => RuleValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => RuleValue::Int(i),
                None => RuleValue::Float(n.as_f64()?),
            },
            Value::String(s) => RuleValue::Str(s.clone()),
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        v => one(v).map(|x| vec![x]),
    }
}

/// Turns a serde-saphyr error into a [`RuleError::Yaml`], keeping its position.
fn yaml_error(e: &serde_saphyr::Error, file: &str, rule_id: Option<String>) -> RuleError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    RuleError::Yaml {
        file: file.to_owned(),
        line,
        column,
        rule_id,
        message: strip_location(&e.without_snippet().to_string()),
    }
}

/// serde-saphyr appends its own ` at line L, column C`; the variant prints the position first
/// (as `file:line:column`), so the suffix would repeat it.
pub(crate) fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Splits a multi-document file on lines that are exactly `---`. Each document keeps its
/// place: the lines before it become blank lines, so positions inside it are file positions.
/// serde-saphyr's own multi-document reader fails the whole stream on one bad document; split
/// here, each document is loaded (and its errors reported) on its own. A separator with
/// trailing text (`--- # x`) is not recognised and makes that chunk a multi-document error.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut line_count = 0usize;
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            docs.push(std::mem::take(&mut current));
            line_count += 1;
            current = "\n".repeat(line_count);
            continue;
        }
        current.push_str(line);
        line_count += 1;
    }
    docs.push(current);
    docs
}

/// Line of a top-level (unindented) `key:`; a nested key of the same name (`related: - id:`)
/// is skipped.
fn find_top_key(doc: &str, key: &str) -> Option<u64> {
    doc.lines().position(|l| key_at_start(l, key)).map(|i| i as u64 + 1)
}

/// 1-based line and column of the first line at or after line `from` whose text (after
/// indentation and an optional `- ` list marker) starts with `key:`, bare or quoted.
fn find_key(doc: &str, key: &str, from: u64) -> Option<(u64, u64)> {
    for (i, line) in doc.lines().enumerate().skip(from.saturating_sub(1) as usize) {
        let body = line.trim_start();
        let mut column = line.len() - body.len();
        let body = match body.strip_prefix("- ") {
            Some(rest) => {
                let trimmed = rest.trim_start();
                column += 2 + rest.len() - trimmed.len();
                trimmed
            }
            None => body,
        };
        if key_at_start(body, key) {
            return Some((i as u64 + 1, column as u64 + 1));
        }
    }
    None
}

/// Whether `text` starts with `key` followed by `:` (optionally with the key quoted).
fn key_at_start(text: &str, key: &str) -> bool {
    let bare = text.strip_prefix(key);
    let quoted =
        ['\'', '"'].iter().find_map(|q| text.strip_prefix(*q)?.strip_prefix(key)?.strip_prefix(*q));
    bare.or(quoted).is_some_and(|rest| rest.trim_start().starts_with(':'))
}

#[cfg(test)]
mod tests;
