//! The Sigma `condition` expression over a rule's named selections, parsed once at load.
//!
//! Grammar, loosest binding first (keywords are case-insensitive, selection names are not):
//!
//! ```text
//! or_expr   := and_expr ("or" and_expr)*
//! and_expr  := unary ("and" unary)*
//! unary     := "not" unary | primary
//! primary   := "(" or_expr ")" | quantifier | NAME
//! quantifier:= ("1" | "any" | "all") "of" (PATTERN | "them")
//! ```
//!
//! A `PATTERN` is a name that may hold `*` wildcards; `them` is every selection whose name does
//! not start with `_`. The compiled tree refers to selections by index, so evaluation never
//! looks at a string.

/// Deepest nesting of parentheses and `not` accepted. Parsing, evaluation and dropping recurse
/// over the tree, so an unbounded depth would let a hostile rule overflow the stack; real
/// conditions nest two or three levels.
const MAX_DEPTH: usize = 64;

/// Most referenced selections for which [`Condition::always`] tries every assignment
/// (2^12 = 4096 evaluations).
const ALWAYS_MAX_SELECTIONS: usize = 12;

/// What the parser says when a `(` or `not` would go past [`MAX_DEPTH`].
const TOO_DEEP: &str = "at most 64 levels of parentheses and `not`";

/// What the parser says it wanted when it finds something else at the start of an operand.
const EXPECTED_OPERAND: &str = "a selection name, `(`, `not`, `1 of`, `any of` or `all of`";

/// A condition that could not be compiled against the rule's selections.
#[derive(Debug, thiserror::Error)]
pub enum ConditionError {
    /// A name that is not one of the rule's selections.
    #[error("unknown selection `{name}` at column {column}")]
    UnknownSelection {
        /// The name as written.
        name: String,
        /// 1-based byte column of the name.
        column: usize,
    },
    /// A quantifier target (`1 of x*`, `all of them`) that matches no selection.
    #[error("`{pattern}` at column {column} matches no selection")]
    NoMatch {
        /// The pattern as written.
        pattern: String,
        /// 1-based byte column of the pattern.
        column: usize,
    },
    /// The text does not follow the grammar.
    #[error("syntax error at column {column}: expected {expected}, found {found}")]
    Syntax {
        /// 1-based byte column of the offending token (one past the end when the text ended).
        column: usize,
        /// What the grammar allows here.
        expected: &'static str,
        /// The offending token as written, or `end of condition`.
        found: String,
    },
    /// The condition is blank.
    #[error("empty condition")]
    Empty,
    /// `N of` with N other than 1; Sigma defines only `1 of` and `all of`.
    #[error("`{n} of` at column {column}: only `1 of`, `any of` and `all of` are supported")]
    UnsupportedCount {
        /// 1-based byte column of the number.
        column: usize,
        /// The number as written (saturated at `u64::MAX`).
        n: u64,
    },
}

impl ConditionError {
    /// A short, fixed label for metrics and lint output.
    pub fn kind(&self) -> &'static str {
        match self {
            ConditionError::UnknownSelection { .. } => "unknown_selection",
            ConditionError::NoMatch { .. } => "no_match",
            ConditionError::Syntax { .. } => "syntax",
            ConditionError::Empty => "empty",
            ConditionError::UnsupportedCount { .. } => "unsupported_count",
        }
    }
}

/// A compiled condition: a tree over selection indices.
#[derive(Debug, Clone)]
pub struct Condition {
    root: Node,
}

/// `And`/`Or` are n-ary so that a long flat chain (`a or b or c ...`) stays one level deep;
/// only parentheses and `not` add depth, and those are capped by [`MAX_DEPTH`].
#[derive(Debug, Clone)]
enum Node {
    Sel(usize),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// `1 of` / `any of`: never empty (the parser rejects a target that matches nothing).
    AnyOf(Vec<usize>),
    /// `all of`: never empty, for the same reason.
    AllOf(Vec<usize>),
}

impl Node {
    fn eval(&self, matched: &mut dyn FnMut(usize) -> bool) -> bool {
        match self {
            Node::Sel(i) => matched(*i),
            Node::Not(inner) => !inner.eval(matched),
            Node::And(children) => children.iter().all(|c| c.eval(matched)),
            Node::Or(children) => children.iter().any(|c| c.eval(matched)),
            Node::AnyOf(indices) => indices.iter().any(|&i| matched(i)),
            Node::AllOf(indices) => indices.iter().all(|&i| matched(i)),
        }
    }

    fn collect(&self, out: &mut Vec<usize>) {
        match self {
            Node::Sel(i) => out.push(*i),
            Node::Not(inner) => inner.collect(out),
            Node::And(children) | Node::Or(children) => {
                children.iter().for_each(|c| c.collect(out))
            }
            Node::AnyOf(indices) | Node::AllOf(indices) => out.extend_from_slice(indices),
        }
    }

    /// Evaluates like [`Node::eval`], pushing onto `out` the matched selections that make a
    /// true result true. On a false result `out` may hold junk past its old length; callers
    /// truncate.
    fn explain(&self, matched: &mut dyn FnMut(usize) -> bool, out: &mut Vec<usize>) -> bool {
        match self {
            Node::Sel(i) => {
                let hit = matched(*i);
                if hit {
                    out.push(*i);
                }
                hit
            }
            // A negation is satisfied by something *not* matching, so it contributes no
            // selection: `selection and not filter` is explained by `selection` alone.
            Node::Not(inner) => !inner.eval(matched),
            Node::And(children) => children.iter().all(|c| c.explain(matched, out)),
            Node::Or(children) => {
                // Every satisfied branch is reported, not only the first: an analyst wants to
                // see all the reasons an event fired.
                let mut any = false;
                for child in children {
                    let mark = out.len();
                    if child.explain(matched, out) {
                        any = true;
                    } else {
                        out.truncate(mark);
                    }
                }
                any
            }
            Node::AnyOf(indices) => {
                let mark = out.len();
                out.extend(indices.iter().copied().filter(|&i| matched(i)));
                out.len() > mark
            }
            Node::AllOf(indices) => {
                let hit = indices.iter().all(|&i| matched(i));
                if hit {
                    out.extend_from_slice(indices);
                }
                hit
            }
        }
    }
}

impl Condition {
    /// Parses `text` against the rule's selection names (in their order).
    pub fn parse(text: &str, selections: &[&str]) -> Result<Condition, ConditionError> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(ConditionError::Empty);
        }
        let mut parser = Parser { tokens, pos: 0, end_column: text.len() + 1, selections };
        let root = parser.or_expr(0)?;
        if let Some(tok) = parser.peek() {
            return Err(ConditionError::Syntax {
                column: tok.column,
                expected: "`and`, `or` or the end of the condition",
                found: tok.text.to_owned(),
            });
        }
        Ok(Condition { root })
    }

    /// Evaluates with `matched(i)` telling whether selection i matched this event;
    /// short-circuits, and calls `matched` lazily (an index may be asked more than once when the
    /// condition names it more than once).
    pub fn eval(&self, matched: &mut dyn FnMut(usize) -> bool) -> bool {
        self.root.eval(matched)
    }

    /// Indices of selections the condition references, sorted and without duplicates (for
    /// lint: unused selections).
    pub fn referenced(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.root.collect(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Which selections (indices, sorted, without duplicates) made a true evaluation true, for
    /// `explain`: the matched selections on every satisfied branch; negated parts contribute
    /// nothing. `None` when the condition is false.
    pub fn explain(&self, matched: &mut dyn FnMut(usize) -> bool) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        if !self.root.explain(matched, &mut out) {
            return None;
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Whether the condition can hold only when selection `i` matches (false when that cannot
    /// be shown, e.g. with more than 12 selections referenced): a rule set may then skip the
    /// rule for events that selection rejects.
    pub fn requires(&self, i: usize) -> bool {
        self.requires_any(&[i])
    }

    /// Whether the condition can hold only when at least one of `set` matches (false when
    /// that cannot be shown): `failed or success` requires one of the two.
    pub fn requires_any(&self, set: &[usize]) -> bool {
        let referenced = self.referenced();
        if referenced.len() > ALWAYS_MAX_SELECTIONS {
            return false;
        }
        let mut forced = 0u32;
        for i in set {
            if let Ok(k) = referenced.binary_search(i) {
                forced |= 1 << k;
            }
        }
        if forced == 0 {
            return false;
        }
        (0u32..(1u32 << referenced.len())).filter(|m| m & forced == 0).all(|mask| {
            !self.eval(&mut |j| referenced.binary_search(&j).is_ok_and(|b| mask & (1 << b) != 0))
        })
    }

    /// `Some(value)` when the condition is `value` whatever the selections match (`sel or not
    /// sel` is `Some(true)`), `None` when it depends on them or when more than 12 selections
    /// are referenced (too many to try every assignment).
    pub fn always(&self) -> Option<bool> {
        let referenced = self.referenced();
        if referenced.len() > ALWAYS_MAX_SELECTIONS {
            return None;
        }
        let mut seen = [false; 2];
        for mask in 0u32..(1u32 << referenced.len()) {
            // Bit k of `mask` is the outcome of the k-th referenced selection; an index the
            // tree holds is always in `referenced`, so the lookup cannot miss.
            let value = self
                .eval(&mut |i| referenced.binary_search(&i).is_ok_and(|k| mask & (1 << k) != 0));
            seen[usize::from(value)] = true;
            if seen[0] && seen[1] {
                return None;
            }
        }
        Some(seen[1])
    }
}

/// One token: a parenthesis or a word (name, pattern, number or keyword).
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    text: &'a str,
    column: usize,
}

impl Token<'_> {
    fn is(&self, keyword: &str) -> bool {
        self.text.eq_ignore_ascii_case(keyword)
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '*')
}

fn tokenize(text: &str) -> Result<Vec<Token<'_>>, ConditionError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '(' || c == ')' {
            tokens.push(Token { text: &text[start..start + 1], column: start + 1 });
            continue;
        }
        if !is_word_char(c) {
            return Err(ConditionError::Syntax {
                column: start + 1,
                // The lexer does not know where it is in the grammar, only that no token
                // starts with this character.
                expected: "a selection name, keyword or parenthesis",
                found: c.to_string(),
            });
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = chars.peek() {
            if !is_word_char(c) {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        tokens.push(Token { text: &text[start..end], column: start + 1 });
    }
    Ok(tokens)
}

struct Parser<'t, 's> {
    tokens: Vec<Token<'t>>,
    pos: usize,
    /// Column reported when the text ends too early.
    end_column: usize,
    selections: &'s [&'s str],
}

impl<'t> Parser<'t, '_> {
    fn peek(&self) -> Option<Token<'t>> {
        self.tokens.get(self.pos).copied()
    }

    fn peek_is(&self, keyword: &str) -> bool {
        self.peek().is_some_and(|t| t.is(keyword))
    }

    fn next_is(&self, keyword: &str) -> bool {
        self.tokens.get(self.pos + 1).is_some_and(|t| t.is(keyword))
    }

    fn unexpected(&self, expected: &'static str) -> ConditionError {
        match self.peek() {
            Some(tok) => {
                ConditionError::Syntax { column: tok.column, expected, found: tok.text.to_owned() }
            }
            None => ConditionError::Syntax {
                column: self.end_column,
                expected,
                found: "end of condition".to_owned(),
            },
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Node, ConditionError> {
        let mut children = vec![self.and_expr(depth)?];
        while self.peek_is("or") {
            self.pos += 1;
            children.push(self.and_expr(depth)?);
        }
        Ok(if children.len() == 1 { children.swap_remove(0) } else { Node::Or(children) })
    }

    fn and_expr(&mut self, depth: usize) -> Result<Node, ConditionError> {
        let mut children = vec![self.unary(depth)?];
        while self.peek_is("and") {
            self.pos += 1;
            children.push(self.unary(depth)?);
        }
        Ok(if children.len() == 1 { children.swap_remove(0) } else { Node::And(children) })
    }

    fn unary(&mut self, depth: usize) -> Result<Node, ConditionError> {
        if self.peek_is("not") {
            if depth >= MAX_DEPTH {
                return Err(self.unexpected(TOO_DEEP));
            }
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Node, ConditionError> {
        let Some(tok) = self.peek() else {
            return Err(self.unexpected(EXPECTED_OPERAND));
        };
        if tok.text == "(" {
            if depth >= MAX_DEPTH {
                return Err(self.unexpected(TOO_DEEP));
            }
            self.pos += 1;
            let inner = self.or_expr(depth + 1)?;
            if self.peek().is_some_and(|t| t.text == ")") {
                self.pos += 1;
                return Ok(inner);
            }
            return Err(self.unexpected("`)`, `and` or `or`"));
        }
        if tok.text == ")" || is_keyword(tok.text) {
            return Err(self.unexpected(EXPECTED_OPERAND));
        }
        // A word followed by `of` is a quantifier; without `of`, `all` or `1` would be an
        // ordinary (if odd) selection name.
        if self.next_is("of") {
            if tok.is("all") {
                self.pos += 2;
                return self.target().map(Node::AllOf);
            }
            if tok.is("any") || tok.text == "1" {
                self.pos += 2;
                return self.target().map(Node::AnyOf);
            }
            if tok.text.bytes().all(|b| b.is_ascii_digit()) {
                let n = tok
                    .text
                    .bytes()
                    .fold(0u64, |n, b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')));
                // `01 of` is still one.
                if n != 1 {
                    return Err(ConditionError::UnsupportedCount { column: tok.column, n });
                }
                self.pos += 2;
                return self.target().map(Node::AnyOf);
            }
        }
        if tok.text.contains('*') {
            return Err(ConditionError::Syntax {
                column: tok.column,
                expected: "a selection name (wildcards need `1 of` or `all of`)",
                found: tok.text.to_owned(),
            });
        }
        self.pos += 1;
        match self.selections.iter().position(|s| *s == tok.text) {
            Some(i) => Ok(Node::Sel(i)),
            None => Err(ConditionError::UnknownSelection {
                name: tok.text.to_owned(),
                column: tok.column,
            }),
        }
    }

    /// The target after `of`: `them`, a pattern, or a plain name.
    fn target(&mut self) -> Result<Vec<usize>, ConditionError> {
        let Some(tok) = self.peek() else {
            return Err(self.unexpected("a selection pattern or `them`"));
        };
        if tok.text == "(" || tok.text == ")" || (is_keyword(tok.text) && !tok.is("them")) {
            return Err(self.unexpected("a selection pattern or `them`"));
        }
        self.pos += 1;
        let indices: Vec<usize> = if tok.is("them") {
            // Sigma convention: `_`-prefixed selections are helpers, left out of `them`.
            (0..self.selections.len()).filter(|&i| !self.selections[i].starts_with('_')).collect()
        } else {
            (0..self.selections.len())
                .filter(|&i| glob(tok.text.as_bytes(), self.selections[i].as_bytes()))
                .collect()
        };
        if !indices.is_empty() {
            return Ok(indices);
        }
        if tok.text.contains('*') || tok.is("them") {
            Err(ConditionError::NoMatch { pattern: tok.text.to_owned(), column: tok.column })
        } else {
            Err(ConditionError::UnknownSelection { name: tok.text.to_owned(), column: tok.column })
        }
    }
}

fn is_keyword(word: &str) -> bool {
    ["and", "or", "not", "of", "them"].iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// Whole-name match where `*` stands for any run of bytes (including none). Greedy with one
/// backtrack point, so it is linear-ish and cannot blow up on many stars.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&b'*') {
            star = Some((p, n));
            p += 1;
        } else if pattern.get(p) == Some(&name[n]) {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            // Let the last star swallow one more byte and retry from there.
            star = Some((sp, sn + 1));
            p = sp + 1;
            n = sn + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The truth table of `text` over `names`: character m is `1` when the condition holds with
    /// selection i matched exactly when bit i of m is set.
    fn table(text: &str, names: &[&str]) -> String {
        let cond = Condition::parse(text, names).unwrap();
        (0u32..1 << names.len())
            .map(|m| if cond.eval(&mut |i| m & (1 << i) != 0) { '1' } else { '0' })
            .collect()
    }

    fn err(text: &str, names: &[&str]) -> ConditionError {
        Condition::parse(text, names).unwrap_err()
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(table("a or b and c", &["a", "b", "c"]), "01010111");
    }

    #[test]
    fn not_binds_tighter_than_and() {
        assert_eq!(table("not a and b", &["a", "b"]), "0010");
    }

    #[test]
    fn not_applies_to_a_parenthesised_group() {
        assert_eq!(table("not (a or b)", &["a", "b"]), "1000");
    }

    #[test]
    fn parentheses_override_precedence_and_nest() {
        let names = ["a", "b", "c"];
        assert_eq!(table("(a or b) and c", &names), "00000111");
        assert_eq!(table("((a or b) and (c or not (a and b)))", &names), "01100111");
        assert_eq!(table("(((a)))", &names), "01010101");
    }

    #[test]
    fn one_of_and_all_of_a_prefix_pattern() {
        let names = ["sel1", "sel2", "other"];
        assert_eq!(table("1 of sel*", &names), "01110111");
        assert_eq!(table("any of sel*", &names), "01110111");
        assert_eq!(table("all of sel*", &names), "00010001");
    }

    #[test]
    fn them_leaves_out_underscore_selections() {
        let names = ["a", "b", "_c"];
        assert_eq!(table("1 of them", &names), "01110111");
        assert_eq!(table("all of them", &names), "00010001");
        // An explicit pattern still reaches a `_` selection.
        assert_eq!(table("1 of _*", &names), "00001111");
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(table("a AND Not b Or c", &["a", "b", "c"]), "01001111");
        assert_eq!(table("ALL OF THEM", &["a", "b"]), "0001");
        assert_eq!(table("Any Of b*", &["a", "b1"]), "0011");
    }

    #[test]
    fn selection_names_are_case_sensitive() {
        assert!(matches!(err("A", &["a"]), ConditionError::UnknownSelection { column: 1, .. }));
    }

    #[test]
    fn wildcard_in_the_middle_of_a_pattern() {
        let names = ["sel_a_x", "sel_b_y", "selx", "sel_x"];
        assert_eq!(table("1 of sel*_x", &names), "0101010111111111");
        assert_eq!(table("all of sel*_x", &names), "0000000001010101");
    }

    #[test]
    fn glob_matches_whole_names() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"aXbYbZc"));
        assert!(glob(b"**x", b"x"));
        assert!(!glob(b"sel*", b"se"));
        assert!(!glob(b"sel", b"sel1"));
        assert!(!glob(b"*_x", b"a_xy"));
    }

    /// Conditions as written in SigmaHQ `rules/cloud/aws/cloudtrail/`.
    #[test]
    fn sigmahq_cloudtrail_conditions() {
        assert_eq!(table("selection", &["selection"]), "01");
        assert_eq!(table("keywords", &["keywords"]), "01");
        assert_eq!(table("selection and not filter", &["selection", "filter"]), "0100");
        assert_eq!(
            table(
                "selection_source and (selection_eventname1 or selection_eventname2)",
                &["selection_source", "selection_eventname1", "selection_eventname2"],
            ),
            "00010101"
        );
        assert_eq!(
            table("1 of selection_*", &["selection_a", "selection_b", "filter"]),
            "01110111"
        );
        assert_eq!(table("all of selection*", &["selection", "selection_b", "filter"]), "00010001");
        assert_eq!(
            table("selection and not 1 of filter_*", &["selection", "filter_a", "filter_b"]),
            "01000000"
        );
    }

    #[test]
    fn unknown_selection_names_its_column() {
        let e = err("selection and nope", &["selection"]);
        assert!(
            matches!(&e, ConditionError::UnknownSelection { name, column: 15 } if name == "nope")
        );
        assert_eq!(e.kind(), "unknown_selection");
        // A quantifier target without a wildcard is a name, so a missing one is unknown too.
        let e = err("all of nope", &["selection"]);
        assert!(matches!(e, ConditionError::UnknownSelection { column: 8, .. }));
    }

    #[test]
    fn pattern_matching_nothing_names_its_column() {
        let e = err("selection and not 1 of filter_*", &["selection"]);
        assert!(
            matches!(&e, ConditionError::NoMatch { pattern, column: 24 } if pattern == "filter_*")
        );
        assert_eq!(e.kind(), "no_match");
        let e = err("all of them", &["_helper"]);
        assert!(matches!(&e, ConditionError::NoMatch { pattern, column: 8 } if pattern == "them"));
    }

    #[test]
    fn syntax_errors_name_column_and_token() {
        let names = ["sel", "selection", "x"];
        let cases: [(&str, usize, &str); 10] = [
            ("selection and", 14, "end of condition"),
            ("selection or or x", 14, "or"),
            ("(selection", 11, "end of condition"),
            ("selection )", 11, ")"),
            ("selection x", 11, "x"),
            ("()", 2, ")"),
            ("sel$", 4, "$"),
            ("sel*", 1, "sel*"),
            ("1 of", 5, "end of condition"),
            ("all of (sel)", 8, "("),
        ];
        for (text, want_column, want_found) in cases {
            match err(text, &names) {
                ConditionError::Syntax { column, found, .. } => {
                    assert_eq!((column, found.as_str()), (want_column, want_found), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        assert_eq!(err("and", &names).kind(), "syntax");
    }

    #[test]
    fn nesting_is_capped() {
        // The 65th `(` (column 65) is the one refused.
        let deep = format!("{}sel{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(matches!(err(&deep, &["sel"]), ConditionError::Syntax { column: 65, .. }));
        let nots = format!("{}sel", "not ".repeat(MAX_DEPTH + 1));
        let column = 4 * MAX_DEPTH + 1;
        assert!(
            matches!(err(&nots, &["sel"]), ConditionError::Syntax { column: c, .. } if c == column)
        );
        let ok = format!("{}sel{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(table(&ok, &["sel"]), "01");
        let ok = format!("{}sel", "not ".repeat(MAX_DEPTH));
        assert_eq!(table(&ok, &["sel"]), "01");
    }

    #[test]
    fn blank_condition_is_empty() {
        assert!(matches!(err("", &["a"]), ConditionError::Empty));
        let e = err(" \t\n", &["a"]);
        assert!(matches!(e, ConditionError::Empty));
        assert_eq!(e.kind(), "empty");
    }

    #[test]
    fn only_one_of_is_a_supported_count() {
        let e = err("2 of sel*", &["sel1"]);
        assert!(matches!(e, ConditionError::UnsupportedCount { column: 1, n: 2 }));
        assert_eq!(e.kind(), "unsupported_count");
        let e = err("sel1 or 3 of them", &["sel1"]);
        assert!(matches!(e, ConditionError::UnsupportedCount { column: 9, n: 3 }));
        let e = err("99999999999999999999999 of them", &["sel1"]);
        assert!(matches!(e, ConditionError::UnsupportedCount { n: u64::MAX, .. }));
        assert_eq!(table("01 of sel*", &["sel1"]), "01");
    }

    #[test]
    fn requires_finds_selections_every_true_evaluation_needs() {
        let names = ["a", "b", "c"];
        let c = |text: &str| Condition::parse(text, &names).unwrap();
        assert!(c("a and (b or c)").requires(0));
        assert!(!c("a and (b or c)").requires(1));
        assert!(!c("a or b").requires(0));
        assert!(!c("not a").requires(0));
        assert!(!c("b").requires(0));
        assert!(c("all of them").requires(2));
        assert!(c("a or b").requires_any(&[0, 1]));
        assert!(c("(a or b) and not c").requires_any(&[0, 1]));
        assert!(!c("a or b or c").requires_any(&[0, 1]));
        assert!(!c("a").requires_any(&[]));
    }

    #[test]
    fn always_spots_tautologies_and_contradictions() {
        let names = ["sel", "filter"];
        let always = |text: &str| Condition::parse(text, &names).unwrap().always();
        assert_eq!(always("sel or not sel"), Some(true));
        assert_eq!(always("sel and not sel"), Some(false));
        assert_eq!(always("1 of them and not 1 of them"), Some(false));
        assert_eq!(always("sel and not filter"), None);
        assert_eq!(always("sel"), None);
    }

    #[test]
    fn always_gives_up_past_twelve_selections() {
        let names: Vec<String> = (0..13).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let text = format!("{} or not s0", refs.join(" or "));
        assert_eq!(Condition::parse(&text, &refs).unwrap().always(), None);
        let text = format!("{} or not s0", refs[..12].join(" or "));
        assert_eq!(Condition::parse(&text, &refs).unwrap().always(), Some(true));
    }

    #[test]
    fn explain_reports_matched_selections_on_satisfied_branches() {
        let names = ["selection", "filter", "alt_a", "alt_b"];
        let explain = |text: &str, hits: &[usize]| {
            Condition::parse(text, &names).unwrap().explain(&mut |i| hits.contains(&i))
        };
        // A negation that holds contributes nothing.
        assert_eq!(explain("selection and not filter", &[0]), Some(vec![0]));
        assert_eq!(explain("selection and not filter", &[0, 1]), None);
        // Every satisfied `or` branch, not just the first.
        assert_eq!(explain("selection or 1 of alt_*", &[0, 3]), Some(vec![0, 3]));
        assert_eq!(explain("selection or 1 of alt_*", &[2, 3]), Some(vec![2, 3]));
        // A failed branch leaves nothing behind.
        assert_eq!(explain("(selection and filter) or alt_a", &[0, 2]), Some(vec![2]));
        assert_eq!(explain("all of alt_*", &[1, 2, 3]), Some(vec![2, 3]));
        assert_eq!(explain("selection or selection", &[0]), Some(vec![0]));
    }

    #[test]
    fn referenced_lists_each_selection_once() {
        let names = ["a", "b", "_c", "d"];
        let cond = Condition::parse("a or (1 of them and not a)", &names).unwrap();
        assert_eq!(cond.referenced(), vec![0, 1, 3]);
        let cond = Condition::parse("d and not 1 of _*", &names).unwrap();
        assert_eq!(cond.referenced(), vec![2, 3]);
    }

    /// Selections for the property tests, with the sets each pattern covers written out by
    /// hand rather than computed by `glob`.
    const NAMES: [&str; 5] = ["sel_a", "sel_b", "filter_a", "filter_b", "_sel_c"];
    const PATTERNS: [(&str, &[usize]); 5] = [
        ("sel_*", &[0, 1]),
        ("filter_*", &[2, 3]),
        ("*_b", &[1, 3]),
        ("them", &[0, 1, 2, 3]),
        ("_*", &[4]),
    ];

    #[derive(Debug, Clone)]
    enum Expr {
        Sel(usize),
        AnyOf(usize),
        AllOf(usize),
        Paren(Box<Expr>),
        Not(Box<Expr>),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
    }

    impl Expr {
        fn eval(&self, m: u32) -> bool {
            let hit = |i: usize| m & (1 << i) != 0;
            match self {
                Expr::Sel(i) => hit(*i),
                Expr::AnyOf(p) => PATTERNS[*p].1.iter().any(|&i| hit(i)),
                Expr::AllOf(p) => PATTERNS[*p].1.iter().all(|&i| hit(i)),
                Expr::Paren(e) => e.eval(m),
                Expr::Not(e) => !e.eval(m),
                Expr::And(a, b) => a.eval(m) && b.eval(m),
                Expr::Or(a, b) => a.eval(m) || b.eval(m),
            }
        }

        /// Prints with only the parentheses precedence needs (plus the explicit `Paren`s), so
        /// the parser's precedence is what gets tested. `upper` picks keyword case.
        fn print(&self, min_prec: u8, upper: bool, out: &mut String) {
            let kw = |k: &str| if upper { k.to_uppercase() } else { k.to_owned() };
            let (prec, text) = match self {
                Expr::Sel(i) => (4, NAMES[*i].to_owned()),
                Expr::AnyOf(p) => (4, format!("1 {} {}", kw("of"), PATTERNS[*p].0)),
                Expr::AllOf(p) => (4, format!("{} {} {}", kw("all"), kw("of"), PATTERNS[*p].0)),
                Expr::Paren(e) => {
                    let mut s = String::new();
                    e.print(0, upper, &mut s);
                    (4, format!("({s})"))
                }
                Expr::Not(e) => {
                    let mut s = format!("{} ", kw("not"));
                    e.print(3, upper, &mut s);
                    (3, s)
                }
                Expr::And(a, b) | Expr::Or(a, b) => {
                    let (prec, op) =
                        if matches!(self, Expr::And(..)) { (2, "and") } else { (1, "or") };
                    let mut s = String::new();
                    a.print(prec, upper, &mut s);
                    s.push_str(&format!(" {} ", kw(op)));
                    b.print(prec + 1, upper, &mut s);
                    (prec, s)
                }
            };
            if prec < min_prec {
                out.push_str(&format!("({text})"));
            } else {
                out.push_str(&text);
            }
        }
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            (0..NAMES.len()).prop_map(Expr::Sel),
            (0..PATTERNS.len()).prop_map(Expr::AnyOf),
            (0..PATTERNS.len()).prop_map(Expr::AllOf),
        ];
        leaf.prop_recursive(6, 48, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Paren(Box::new(e))),
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            ]
        })
    }

    fn condition_ish() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            Just("and"),
            Just("OR"),
            Just("not"),
            Just("("),
            Just(")"),
            Just("1"),
            Just("2"),
            Just("all"),
            Just("of"),
            Just("them"),
            Just("sel_a"),
            Just("sel_*"),
            Just("*"),
            Just("é"),
            Just("$"),
        ];
        proptest::collection::vec(word, 0..24).prop_map(|w| w.join(" "))
    }

    fn exercise(text: &str) {
        if let Ok(cond) = Condition::parse(text, &NAMES) {
            for m in 0u32..32 {
                let value = cond.eval(&mut |i| m & (1 << i) != 0);
                let why = cond.explain(&mut |i| m & (1 << i) != 0);
                assert_eq!(value, why.is_some(), "{text}");
            }
            let _ = cond.always();
        }
    }

    proptest! {
        #[test]
        fn printed_trees_parse_to_the_same_truth_table(e in expr(), upper in any::<bool>()) {
            let mut text = String::new();
            e.print(0, upper, &mut text);
            let cond = Condition::parse(&text, &NAMES).unwrap();
            for m in 0u32..32 {
                prop_assert_eq!(cond.eval(&mut |i| m & (1 << i) != 0), e.eval(m), "{} m={:05b}", text, m);
            }
            prop_assert_eq!(cond.referenced().iter().all(|&i| i < NAMES.len()), true);
        }

        #[test]
        fn parser_never_panics_on_arbitrary_text(text in ".*") {
            exercise(&text);
        }

        #[test]
        fn parser_never_panics_on_condition_like_text(text in condition_ish()) {
            exercise(&text);
        }
    }
}
