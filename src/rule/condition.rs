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
            let value = self.eval(&mut |i| {
                referenced.binary_search(&i).is_ok_and(|k| mask & (1 << k) != 0)
            });
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
                expected: EXPECTED_OPERAND,
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
            Some(tok) => ConditionError::Syntax {
                column: tok.column,
                expected,
                found: tok.text.to_owned(),
            },
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
        if depth >= MAX_DEPTH {
            return Err(self.unexpected("at most 64 levels of parentheses and `not`"));
        }
        if self.peek_is("not") {
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
                let n = tok.text.bytes().fold(0u64, |n, b| {
                    n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                });
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
