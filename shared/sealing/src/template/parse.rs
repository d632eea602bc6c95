//! The parser of Go's text/template (go/src/text/template/parse/parse.go): the same grammar,
//! and the same parse-time checks (undefined functions and variables are errors before
//! anything runs, as in Go).

use std::collections::BTreeMap;

use super::funcs;
use super::lex::{Item, Tok};
use super::TemplateError;

#[derive(Debug)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        name: String,
        pipe: Option<Pipe>,
        line: usize,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(super) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(super) struct Pipe {
    pub line: usize,
    pub decl: Vec<String>,
    /// `$x = ...` (assign to an existing variable) rather than `$x := ...`.
    pub assign: bool,
    pub cmds: Vec<Vec<Arg>>,
}

#[derive(Debug)]
pub(super) enum Arg {
    Dot,
    /// `.a.b`
    Field(Vec<String>),
    /// `$x.a.b`
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `(pipeline).a.b`
    Sub(Box<Pipe>, Vec<String>),
}

/// How a nested list ended: `{{end}}` or `{{else}}`, and on which line.
type ListEnd = (&'static str, usize);

pub(super) struct Parsed {
    pub root: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

pub(super) fn parse(items: Vec<Item>) -> Result<Parsed, TemplateError> {
    let mut p = Parser {
        items,
        pos: 0,
        vars: vec!["$".to_string()],
        defines: BTreeMap::new(),
        range_depth: 0,
    };
    let (root, end) = p.list(true)?;
    if let Some(end) = end {
        return Err(TemplateError::parse(
            end.1,
            &format!("unexpected {{{{{}}}}}", end.0),
        ));
    }
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
    vars: Vec<String>,
    defines: BTreeMap<String, Vec<Node>>,
    range_depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Item> {
        self.items.get(self.pos)
    }
    fn next(&mut self) -> Option<Item> {
        let item = self.items.get(self.pos).cloned();
        self.pos += 1;
        item
    }
    fn line(&self) -> usize {
        self.items
            .get(self.pos.min(self.items.len().saturating_sub(1)))
            .map_or(1, |i| i.line)
    }
    fn err<T>(&self, msg: &str) -> Result<T, TemplateError> {
        Err(TemplateError::parse(self.line(), msg))
    }
    fn expect_right(&mut self, context: &str) -> Result<(), TemplateError> {
        match self.next() {
            Some(Item {
                tok: Tok::Right, ..
            }) => Ok(()),
            _ => self.err(&format!("unexpected token in {context}")),
        }
    }

    /// Parses nodes up to `{{end}}` or `{{else ...}}` (returned, not consumed beyond the
    /// keyword), or up to the end of input when `top`.
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, Option<ListEnd>), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let Some(item) = self.next() else {
                if top {
                    return Ok((nodes, None));
                }
                return self.err("unexpected EOF");
            };
            match item.tok {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Left => {
                    let line = item.line;
                    match self.peek().map(|i| i.tok.clone()) {
                        Some(Tok::Keyword(k @ ("end" | "else"))) => {
                            self.pos += 1;
                            if top {
                                return Err(TemplateError::parse(
                                    line,
                                    &format!("unexpected {{{{{k}}}}}"),
                                ));
                            }
                            return Ok((nodes, Some((k, line))));
                        }
                        Some(Tok::Keyword(k)) => {
                            self.pos += 1;
                            if let Some(n) = self.keyword(k, line, top)? {
                                nodes.push(n);
                            }
                        }
                        _ => {
                            let pipe = self.pipeline("command", false)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                _ => return self.err("unexpected token"),
            }
        }
    }

    fn keyword(&mut self, k: &str, line: usize, top: bool) -> Result<Option<Node>, TemplateError> {
        Ok(Some(match k {
            "if" => Node::If(self.branch("if")?),
            "with" => Node::With(self.branch("with")?),
            "range" => {
                self.range_depth += 1;
                let b = self.branch("range");
                self.range_depth -= 1;
                Node::Range(b?)
            }
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return self.err(&format!("{{{{{k}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(k)?;
                if k == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            "template" => {
                let name = self.template_name("template")?;
                let pipe = if matches!(self.peek().map(|i| &i.tok), Some(Tok::Right)) {
                    self.pos += 1;
                    None
                } else {
                    Some(self.pipeline("template clause", false)?)
                };
                Node::Template { name, pipe, line }
            }
            "define" | "block" => {
                if k == "define" && !top {
                    return self.err("unexpected <define> in command");
                }
                let name = self.template_name(k)?;
                let pipe = if k == "block" {
                    Some(self.pipeline("block clause", false)?)
                } else {
                    self.expect_right("define clause")?;
                    None
                };
                // A defined template has its own variables: only `$`.
                let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
                let (body, end) = self.list(false)?;
                self.vars = saved;
                if end.map(|e| e.0) != Some("end") {
                    return self.err(&format!("unexpected {{{{else}}}} in {k}"));
                }
                self.expect_right("end")?;
                self.defines.insert(name.clone(), body);
                if k == "define" {
                    return Ok(None);
                }
                Node::Template { name, pipe, line }
            }
            _ => return self.err(&format!("unexpected keyword {k}")),
        }))
    }

    fn template_name(&mut self, context: &str) -> Result<String, TemplateError> {
        match self.next().map(|i| i.tok) {
            Some(Tok::Str(s)) => Ok(s),
            _ => self.err(&format!("unexpected name in {context} clause")),
        }
    }

    /// if/with/range: pipeline, list, optional else (an `else if`/`else with` nests).
    fn branch(&mut self, context: &'static str) -> Result<Branch, TemplateError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(context, context == "range")?;
        let (list, end) = self.list(false)?;
        let mut else_list = None;
        if let Some(("else", _)) = end {
            // `{{else if ...}}` / `{{else with ...}}`: one node, sharing our {{end}}.
            match self.peek().map(|i| i.tok.clone()) {
                Some(Tok::Keyword(k @ ("if" | "with"))) if k == context => {
                    self.pos += 1;
                    let nested = self.branch(context)?;
                    else_list = Some(vec![if k == "if" {
                        Node::If(nested)
                    } else {
                        Node::With(nested)
                    }]);
                    self.vars.truncate(mark);
                    return Ok(Branch {
                        pipe,
                        list,
                        else_list,
                    });
                }
                _ => {}
            }
            self.expect_right("else")?;
            let (l, end2) = self.list(false)?;
            if end2.map(|e| e.0) != Some("end") {
                return self.err("expected end; found else");
            }
            else_list = Some(l);
        }
        self.expect_right("end")?;
        self.vars.truncate(mark);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    /// parse.go `pipeline`: optional declarations, then commands separated by `|`, up to
    /// `}}` (or `)` for a parenthesised pipeline, which the caller consumes).
    fn pipeline(&mut self, context: &str, allow_two: bool) -> Result<Pipe, TemplateError> {
        let line = self.line();
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x =`, `$k, $v :=` (range only).
        if let Some(Tok::Variable(v)) = self.peek().map(|i| i.tok.clone()) {
            let after = self.items.get(self.pos + 1).map(|i| i.tok.clone());
            match after {
                Some(Tok::Declare | Tok::Assign) => {
                    assign = after == Some(Tok::Assign);
                    self.pos += 2;
                    decl.push(v);
                }
                Some(Tok::Comma) if allow_two => {
                    if let (Some(Tok::Variable(v2)), Some(Tok::Declare | Tok::Assign)) = (
                        self.items.get(self.pos + 2).map(|i| i.tok.clone()),
                        self.items.get(self.pos + 3).map(|i| i.tok.clone()),
                    ) {
                        assign = self.items[self.pos + 3].tok == Tok::Assign;
                        self.pos += 4;
                        decl.push(v);
                        decl.push(v2);
                    } else {
                        return self.err(&format!("too many declarations in {context}"));
                    }
                }
                _ => {}
            }
        }
        if assign {
            for v in &decl {
                if !self.vars.contains(v) {
                    return self.err(&format!("undefined variable \"{v}\""));
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command()?;
            if cmd.is_empty() {
                return self.err(&format!("missing value for {context}"));
            }
            cmds.push(cmd);
            match self.peek().map(|i| &i.tok) {
                Some(Tok::Pipe) => {
                    self.pos += 1;
                }
                Some(Tok::Right) => {
                    self.pos += 1;
                    break;
                }
                Some(Tok::RParen) => break,
                _ => return self.err(&format!("unexpected token in {context}")),
            }
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            line,
            decl,
            assign,
            cmds,
        })
    }

    fn command(&mut self) -> Result<Vec<Arg>, TemplateError> {
        let mut args = Vec::new();
        loop {
            match self.peek().map(|i| &i.tok) {
                None => return self.err("unclosed action"),
                Some(Tok::Pipe | Tok::Right | Tok::RParen) => return Ok(args),
                _ => args.push(self.operand()?),
            }
        }
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let item = self.next().unwrap();
        let mut arg = match item.tok {
            Tok::Dot => Arg::Dot,
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return self.err(&format!("undefined variable \"{v}\""));
                }
                Arg::Var(v, Vec::new())
            }
            Tok::Ident(name) => {
                if !funcs::exists(&name) {
                    return self.err(&format!("function \"{name}\" not defined"));
                }
                if !funcs::implemented(&name) {
                    return Err(TemplateError::Unsupported(name));
                }
                Arg::Func(name)
            }
            Tok::Str(s) => Arg::Str(s),
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Nil => Arg::Nil,
            Tok::Char(c) => Arg::Int(c as i64),
            Tok::Number(n) => number(&n).ok_or_else(|| {
                TemplateError::parse(item.line, &format!("illegal number syntax: {n:?}"))
            })?,
            Tok::LParen => {
                let pipe = self.pipeline("parenthesized pipeline", false)?;
                match self.next().map(|i| i.tok) {
                    Some(Tok::RParen) => {}
                    _ => return self.err("unclosed left paren"),
                }
                Arg::Sub(Box::new(pipe), Vec::new())
            }
            _ => return self.err("unexpected token in operand"),
        };
        // `.a.b`, `$x.a`, `(pipe).a`: fields written right after a term chain onto it.
        while let Some(Item {
            tok: Tok::Field(f),
            spaced: false,
            ..
        }) = self.peek().cloned()
        {
            self.pos += 1;
            match &mut arg {
                Arg::Field(fs) | Arg::Var(_, fs) | Arg::Sub(_, fs) => fs.push(f),
                _ => return self.err("unexpected . after term"),
            }
        }
        Ok(arg)
    }
}

/// parse.go `newNumber` + exec.go `idealConstant`: text with `.`, `e` or `p` (and not a hex
/// integer) is a float64, anything else that parses as an integer is an int.
fn number(text: &str) -> Option<Arg> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    let is_hex = lower.starts_with("0x");
    if !is_hex && lower.contains(['.', 'e', 'p']) {
        let f: f64 = lower.parse().ok()?;
        return Some(Arg::Float(if neg { -f } else { f }));
    }
    int.map(|i| Arg::Int(if neg { -i } else { i }))
}
