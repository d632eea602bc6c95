//! Executing a parsed template (go/src/text/template/exec.go): the walk over nodes, pipelines,
//! variables, field chains and calls, with Go's rules for missing keys and for what a
//! function is handed in place of a missing value.

use std::collections::BTreeMap;

use super::funcs;
use super::parse::{Arg, Branch, Node, Pipe};
use super::value::{Bytes, Value};
use super::TemplateError;

/// Go stops runaway `template` recursion at 100000 levels; we stop far earlier, as a
/// Secret needs nothing deep.
const MAX_DEPTH: usize = 1000;

pub(super) struct Exec<'a> {
    pub defines: &'a BTreeMap<String, Vec<Node>>,
    pub vars: Vec<(String, Value)>,
    pub out: Bytes,
    pub depth: usize,
}

pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

type R<T> = Result<T, TemplateError>;

fn err<T>(line: usize, msg: impl Into<String>) -> R<T> {
    Err(TemplateError::Exec {
        line,
        message: msg.into(),
    })
}

impl Exec<'_> {
    pub fn walk(&mut self, dot: &Value, nodes: &[Node]) -> R<Flow> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.extend_from_slice(t.as_bytes()),
                Node::Action(pipe) => {
                    let v = self.pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        v.print(&mut self.out);
                    }
                }
                Node::If(b) | Node::With(b) => {
                    let with = matches!(node, Node::With(_));
                    let mark = self.vars.len();
                    let v = self.pipeline(dot, &b.pipe)?;
                    let flow = if v.truth() {
                        let inner = if with { v } else { dot.clone() };
                        self.walk(&inner, &b.list)?
                    } else if let Some(e) = &b.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
                Node::Template { name, pipe, line } => {
                    let Some(body) = self.defines.get(name) else {
                        return err(*line, format!("no such template {name:?}"));
                    };
                    let new_dot = match pipe {
                        Some(p) => self.pipeline(dot, p)?,
                        None => Value::Nil,
                    };
                    if self.depth >= MAX_DEPTH {
                        return err(*line, "exceeded maximum template depth");
                    }
                    // A template call starts with only `$`, bound to its dot.
                    let saved =
                        std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                    self.depth += 1;
                    let r = self.walk(&new_dot, body);
                    self.depth -= 1;
                    self.vars = saved;
                    r?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    /// exec.go `walkRange`: maps in sorted key order, slices by index, ints as 0..n; with
    /// `$v :=` the element, with `$k, $v :=` the key or index too.
    fn range(&mut self, dot: &Value, b: &Branch) -> R<()> {
        let mark = self.vars.len();
        let v = self.pipeline(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::Map { map, .. } => map
                .borrow()
                .iter()
                .map(|(k, v)| (Value::str(k.as_bytes()), v.clone()))
                .collect(),
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Missing | Value::Nil => Vec::new(),
            other => {
                return err(
                    b.pipe.line,
                    format!(
                        "range can't iterate over value of type {}",
                        other.type_name()
                    ),
                )
            }
        };
        let decl = b.pipe.decl.len();
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                self.walk(dot, e)?;
            }
        }
        for (key, elem) in items {
            let top = self.vars.len();
            if decl > 0 {
                // Go sets the last declared variable to the element, the first (of two) to
                // the key; with `=` it assigns instead.
                if b.pipe.assign {
                    let target = &b.pipe.decl[0];
                    let val = if decl > 1 { key.clone() } else { elem.clone() };
                    self.set_var(target, val, b.pipe.line)?;
                    if decl > 1 {
                        self.set_var(&b.pipe.decl[1], elem.clone(), b.pipe.line)?;
                    }
                } else {
                    self.vars[top - 1].1 = elem.clone();
                    if decl > 1 {
                        self.vars[top - 2].1 = key.clone();
                    }
                }
            }
            let flow = self.walk(&elem, &b.list)?;
            self.vars.truncate(top);
            match flow {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value, line: usize) -> R<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => err(line, format!("undefined variable: {name}")),
        }
    }

    fn var(&self, name: &str, line: usize) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => err(line, format!("undefined variable: {name}")),
        }
    }

    pub fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(dot, cmd, last.take(), pipe.line)?);
        }
        let v = last.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.assign {
                self.set_var(name, v.clone(), pipe.line)?;
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, dot: &Value, cmd: &[Arg], fin: Option<Value>, line: usize) -> R<Value> {
        let rest = &cmd[1..];
        let not_a_function = |what: &str| -> R<()> {
            if !rest.is_empty() || fin.is_some() {
                return err(line, format!("can't give argument to non-function {what}"));
            }
            Ok(())
        };
        match &cmd[0] {
            Arg::Func(name) => self.call(dot, name, rest, fin, line),
            Arg::Field(fields) => self.chain(dot, dot.clone(), fields, rest, fin, line),
            Arg::Var(name, fields) => {
                let v = self.var(name, line)?;
                if fields.is_empty() {
                    not_a_function(name)?;
                    return Ok(v);
                }
                self.chain(dot, v, fields, rest, fin, line)
            }
            Arg::Sub(pipe, fields) => {
                let v = self.pipeline(dot, pipe)?;
                if fields.is_empty() {
                    not_a_function("(pipeline)")?;
                    return Ok(v);
                }
                self.chain(dot, v, fields, rest, fin, line)
            }
            Arg::Nil => err(line, "nil is not a command"),
            literal => {
                not_a_function("literal")?;
                self.arg(dot, literal, line)
            }
        }
    }

    /// exec.go `evalFieldChain`: only the last field may be handed arguments, and a map key
    /// never can.
    fn chain(
        &mut self,
        _dot: &Value,
        mut receiver: Value,
        fields: &[String],
        args: &[Arg],
        fin: Option<Value>,
        line: usize,
    ) -> R<Value> {
        for (i, name) in fields.iter().enumerate() {
            let last = i + 1 == fields.len();
            if last && (!args.is_empty() || fin.is_some()) {
                return err(line, format!("{name} is not a method but has arguments"));
            }
            receiver = field(&receiver, name, line)?;
        }
        Ok(receiver)
    }

    /// An argument of a call (exec.go `evalArg`): a function named alone is called with no
    /// arguments.
    fn arg(&mut self, dot: &Value, a: &Arg, line: usize) -> R<Value> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(fields) => self.chain(dot, dot.clone(), fields, &[], None, line)?,
            Arg::Var(name, fields) => {
                let v = self.var(name, line)?;
                self.chain(dot, v, fields, &[], None, line)?
            }
            Arg::Func(name) => self.call(dot, name, &[], None, line)?,
            Arg::Sub(pipe, fields) => {
                let v = self.pipeline(dot, pipe)?;
                self.chain(dot, v, fields, &[], None, line)?
            }
            Arg::Str(s) => Value::str(s.as_bytes()),
            Arg::Int(i) => Value::Int(*i),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Nil,
        })
    }

    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
        line: usize,
    ) -> R<Value> {
        // `and`/`or` stop at the first falsy/truthy argument (Go 1.18+) and return it.
        if name == "and" || name == "or" {
            let total = args.len() + usize::from(fin.is_some());
            if total == 0 {
                return err(
                    line,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                );
            }
            let mut v = Value::Missing;
            for a in args {
                v = self.arg(dot, a, line)?;
                if v.truth() != (name == "and") {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            if matches!(a, Arg::Nil) && !funcs::takes_nil(name) {
                return err(line, format!("cannot assign nil to an argument of {name}"));
            }
            vals.push(self.arg(dot, a, line)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        funcs::call(name, vals).map_err(|message| TemplateError::Exec {
            line,
            message: format!("error calling {name}: {message}"),
        })
    }
}

/// exec.go `evalField` on a map (all Sealed Secrets' data is maps): a missing key is Go's
/// invalid value, which prints as "<no value>".
fn field(receiver: &Value, name: &str, line: usize) -> R<Value> {
    match receiver {
        Value::Missing => Ok(Value::Missing),
        Value::Map { map, .. } => Ok(map.borrow().get(name).cloned().unwrap_or(Value::Missing)),
        Value::Nil => err(
            line,
            format!("nil pointer evaluating interface {{}}.{name}"),
        ),
        other => err(
            line,
            format!("can't evaluate field {name} in type {}", other.type_name()),
        ),
    }
}
