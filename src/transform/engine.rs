//! The Rhai engine transforms run on: the standard packages without blobs, and checked versions of every function that could build more than the limits allow before Rhai checks its result, recurse through a nested value, or wait.
//!
//! Rhai checks a value's size (strings, array and map elements, counted
//! through nested values) when a function returns it or a literal builds it,
//! which bounds most functions: their result is at most a few times the size
//! of their arguments. The functions below are not so bounded, or recurse on
//! the thread's stack once per level of a nested value (formatting, `==`,
//! `in`), and are replaced (a function registered here is found before the
//! packages' one): each checks the size or nesting of what it would build
//! before allocating, and long loops look at the run's deadline and memory.
//! `sleep` is refused (the deadline is not looked at while asleep), and
//! closures and `curry` are off (`no_closure`, and `curry` disabled), so
//! every value is plain data that Rhai's size checks count.

use super::budget;
use rhai::packages::{Package, StandardPackage};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, NativeCallContext, Position, INT};
use std::fmt::Write;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The limits the checked functions apply (from `[transform]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Deepest nesting of arrays and maps formatted, compared or sent.
    pub max_depth: usize,
    pub max_string: usize,
    pub max_array: usize,
}

/// The error for a value that would break a bound; `describe` names the key.
pub(super) fn too_large(what: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorDataTooLarge(what.into(), Position::NONE).into()
}

/// Text naming the nesting bound (see `describe`).
pub(super) const NESTING: &str = "Nesting of array/map";

/// Whether `value` nests arrays and maps at most `max` levels deep (a scalar
/// is 0, `[1]` 1). Recurses at most `max + 1` levels.
pub(super) fn nested_within(value: &Dynamic, max: usize) -> bool {
    if value.is_array() {
        value.as_array_ref().map_or(true, |a| array_within(&a, max))
    } else if value.is_map() {
        value.as_map_ref().map_or(true, |m| map_within(&m, max))
    } else {
        true
    }
}

fn array_within(a: &Array, max: usize) -> bool {
    max > 0 && a.iter().all(|v| nested_within(v, max - 1))
}

fn map_within(m: &Map, max: usize) -> bool {
    max > 0 && m.values().all(|v| nested_within(v, max - 1))
}

fn check_nesting(within: bool) -> Res<()> {
    if within {
        Ok(())
    } else {
        Err(too_large(NESTING))
    }
}

/// Rhai's text for an array (`[1, "a"]`), built here without recursing
/// through the engine, after checking its nesting, and stopped as soon as it
/// is longer than a string may be. A broken bound is not returned as an
/// error (Rhai would then format the value itself, recursively): the text is
/// empty and the run stops at its next operation (`budget::break_run`).
fn format_array(ctx: &NativeCallContext, a: &mut Array, b: Bounds) -> ImmutableString {
    let mut out = String::new();
    let made = check_nesting(array_within(a, b.max_depth)).and_then(|()| array_into(ctx, a, &mut out, b));
    formatted(made, out)
}

/// Rhai's text for an object map (`#{"k": 2}`), as `format_array`.
fn format_map(ctx: &NativeCallContext, m: &mut Map, b: Bounds) -> ImmutableString {
    let mut out = String::new();
    let made = check_nesting(map_within(m, b.max_depth)).and_then(|()| map_into(ctx, m, &mut out, b));
    formatted(made, out)
}

fn formatted(made: Res<()>, out: String) -> ImmutableString {
    match made {
        Ok(()) => out.into(),
        Err(e) => {
            budget::break_run(match *e {
                EvalAltResult::ErrorDataTooLarge(ref what, _) if what == NESTING => NESTING,
                EvalAltResult::ErrorTerminated(ref why, _)
                    if why.clone().into_string().is_ok_and(|w| w == budget::MEMORY) =>
                {
                    budget::MEMORY
                }
                EvalAltResult::ErrorTerminated(..) => budget::DEADLINE,
                _ => STRING,
            });
            ImmutableString::new()
        }
    }
}

/// Text naming the string bound (as Rhai's own error says it).
pub(super) const STRING: &str = "Length of string";

fn array_into(ctx: &NativeCallContext, a: &mut Array, out: &mut String, b: Bounds) -> Res<()> {
    out.push('[');
    for (i, item) in a.iter_mut().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        value_into(ctx, item, out, b)?;
    }
    out.push(']');
    Ok(())
}

fn map_into(ctx: &NativeCallContext, m: &mut Map, out: &mut String, b: Bounds) -> Res<()> {
    out.push_str("#{");
    for (i, (k, item)) in m.iter_mut().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{:?}: ", k.as_str());
        value_into(ctx, item, out, b)?;
    }
    out.push('}');
    Ok(())
}

fn value_into(ctx: &NativeCallContext, value: &mut Dynamic, out: &mut String, b: Bounds) -> Res<()> {
    budget::tick()?;
    if value.is_array() {
        array_into(ctx, &mut *value.as_array_mut()?, out, b)?;
    } else if value.is_map() {
        map_into(ctx, &mut *value.as_map_mut()?, out, b)?;
    } else {
        // A scalar: its own `to_debug`, as Rhai's formatting does.
        match ctx.call_native_fn_raw(rhai::FUNC_TO_DEBUG, true, &mut [value]) {
            Ok(text) if text.is_string() => out.push_str(&text.into_immutable_string().unwrap_or_default()),
            Ok(other) => out.push_str(ctx.engine().map_type_name(other.type_name())),
            Err(_) => out.push_str(ctx.engine().map_type_name(value.type_name())),
        }
    }
    if out.len() > b.max_string {
        return Err(too_large(STRING));
    }
    Ok(())
}

/// `a == b` as Rhai's packages define it (element by element, `==` of each
/// pair of scalars, `false` for scalars of different types without `==`),
/// without recursing through the engine; the caller checked the nesting.
fn equal(ctx: &NativeCallContext, a: &mut Dynamic, b: &mut Dynamic) -> Res<bool> {
    budget::tick()?;
    if a.is_array() && b.is_array() {
        equal_arrays(ctx, &mut *a.as_array_mut()?, &mut *b.as_array_mut()?)
    } else if a.is_map() && b.is_map() {
        equal_maps(ctx, &mut *a.as_map_mut()?, &mut *b.as_map_mut()?)
    } else if a.is_array() || a.is_map() || b.is_array() || b.is_map() {
        Ok(false)
    } else {
        let same_type = a.type_id() == b.type_id();
        match ctx.call_native_fn_raw(rhai::OP_EQUALS, true, &mut [a, b]) {
            Ok(r) => Ok(r.as_bool().unwrap_or(false)),
            Err(e) if !same_type && matches!(*e, EvalAltResult::ErrorFunctionNotFound(..)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn equal_arrays(ctx: &NativeCallContext, x: &mut Array, y: &mut Array) -> Res<bool> {
    if x.len() != y.len() {
        return Ok(false);
    }
    for (p, q) in x.iter_mut().zip(y.iter_mut()) {
        if !equal(ctx, p, q)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn equal_maps(ctx: &NativeCallContext, x: &mut Map, y: &mut Map) -> Res<bool> {
    if x.len() != y.len() {
        return Ok(false);
    }
    for (k, p) in x.iter_mut() {
        let Some(q) = y.get_mut(k) else { return Ok(false) };
        if !equal(ctx, p, q)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The first index from `start` whose element equals `value` (Rhai's
/// `index_of` and `in`), without copying `value` for each element.
fn position(ctx: &NativeCallContext, array: &mut Array, mut value: Dynamic, start: usize, b: Bounds) -> Res<INT> {
    check_nesting(nested_within(&value, b.max_depth))?;
    for (i, item) in array.iter_mut().enumerate().skip(start) {
        check_nesting(nested_within(item, b.max_depth))?;
        if equal(ctx, item, &mut value)? {
            return Ok(i as INT);
        }
    }
    Ok(-1)
}

/// Rhai's start position: negative counts from the end.
fn start_at(len: usize, start: INT) -> usize {
    if start < 0 {
        len.saturating_sub(start.unsigned_abs() as usize)
    } else {
        (start as u64).min(len as u64) as usize
    }
}

/// `string.replace(find, with)`: the size of the result is known before it is built.
fn replace(string: &mut ImmutableString, find: &str, with: &str, b: Bounds) -> Res<()> {
    let count = if find.is_empty() { string.chars().count() + 1 } else { string.matches(find).count() };
    let len = (string.len() - count * find.len()) as u128 + count as u128 * with.len() as u128;
    if len > b.max_string as u128 {
        return Err(too_large(STRING));
    }
    budget::reserve(len as usize)?;
    *string = string.replace(find, with).into();
    Ok(())
}

/// The parts of a split, counted before any is built.
fn parts<'a>(count: usize, make: impl FnOnce() -> Vec<&'a str>, b: Bounds) -> Res<Array> {
    if count > b.max_array {
        return Err(too_large("Size of array/BLOB"));
    }
    budget::reserve(count * std::mem::size_of::<Dynamic>())?;
    Ok(make().into_iter().map(|s| Dynamic::from(ImmutableString::from(s))).collect())
}

/// Rhai's `segments` argument: at least one part.
fn segments(n: INT) -> usize {
    n.clamp(1, INT::MAX) as usize
}

/// Builds the engine with `bounds`; the caller sets the limits and callbacks.
pub(super) fn build(b: Bounds) -> Engine {
    let mut engine = Engine::new_raw();
    // Engine::new() less the file module resolver and the default print
    // and debug callbacks: the standard package (one module: several cost a
    // lookup each per call, measured 2x slower), every function of which was
    // read (see the module's doc).
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine.set_max_strings_interned(256);

    // Formatting: `${a}`, `"" + a`, print, debug, to_string, to_debug.
    for name in ["print", "to_string", "debug", "to_debug"] {
        engine.register_fn(name, move |ctx: NativeCallContext, a: &mut Array| format_array(&ctx, a, b));
        engine.register_fn(name, move |ctx: NativeCallContext, m: &mut Map| format_map(&ctx, m, b));
    }
    engine.register_fn("to_json", move |m: &mut Map| -> Res<String> {
        check_nesting(map_within(m, b.max_depth))?;
        let text = rhai::format_map_as_json(m);
        if text.len() > b.max_string {
            return Err(too_large(STRING));
        }
        Ok(text)
    });

    // `==`, `!=`, `in`, `contains`, `index_of`: compared here, both sides
    // checked for nesting first, and the value looked for not copied for
    // each element.
    engine.register_fn("==", move |ctx: NativeCallContext, x: &mut Array, mut y: Array| {
        check_nesting(array_within(x, b.max_depth) && array_within(&y, b.max_depth))?;
        equal_arrays(&ctx, x, &mut y)
    });
    engine.register_fn("!=", move |ctx: NativeCallContext, x: &mut Array, mut y: Array| {
        check_nesting(array_within(x, b.max_depth) && array_within(&y, b.max_depth))?;
        equal_arrays(&ctx, x, &mut y).map(|e| !e)
    });
    engine.register_fn("==", move |ctx: NativeCallContext, x: &mut Map, mut y: Map| {
        check_nesting(map_within(x, b.max_depth) && map_within(&y, b.max_depth))?;
        equal_maps(&ctx, x, &mut y)
    });
    engine.register_fn("!=", move |ctx: NativeCallContext, x: &mut Map, mut y: Map| {
        check_nesting(map_within(x, b.max_depth) && map_within(&y, b.max_depth))?;
        equal_maps(&ctx, x, &mut y).map(|e| !e)
    });
    engine.register_fn("contains", move |ctx: NativeCallContext, a: &mut Array, v: Dynamic| {
        position(&ctx, a, v, 0, b).map(|i| i >= 0)
    });
    engine.register_fn("index_of", move |ctx: NativeCallContext, a: &mut Array, v: Dynamic| position(&ctx, a, v, 0, b));
    engine.register_fn("index_of", move |ctx: NativeCallContext, a: &mut Array, v: Dynamic, start: INT| {
        let start = start_at(a.len(), start);
        position(&ctx, a, v, start, b)
    });

    // Strings: results whose size is counted before they are built.
    engine.register_fn("replace", move |s: &mut ImmutableString, find: &str, with: &str| replace(s, find, with, b));
    engine.register_fn("replace", move |s: &mut ImmutableString, find: char, with: &str| {
        replace(s, find.encode_utf8(&mut [0; 4]), with, b)
    });
    engine.register_fn("to_chars", move |s: &str| -> Res<Array> {
        let count = s.chars().count();
        if count > b.max_array {
            return Err(too_large("Size of array/BLOB"));
        }
        budget::reserve(count * std::mem::size_of::<Dynamic>())?;
        Ok(s.chars().map(Dynamic::from).collect())
    });
    engine.register_fn("split", move |s: &mut ImmutableString| {
        parts(s.split_whitespace().count(), || s.split_whitespace().collect(), b)
    });
    engine.register_fn("split", move |s: &mut ImmutableString, d: &str| {
        parts(s.split(d).count(), || s.split(d).collect(), b)
    });
    engine.register_fn("split", move |s: &mut ImmutableString, d: char| {
        parts(s.split(d).count(), || s.split(d).collect(), b)
    });
    engine.register_fn("split", move |s: &mut ImmutableString, d: &str, n: INT| {
        parts(s.splitn(segments(n), d).count(), || s.splitn(segments(n), d).collect(), b)
    });
    engine.register_fn("split", move |s: &mut ImmutableString, d: char, n: INT| {
        parts(s.splitn(segments(n), d).count(), || s.splitn(segments(n), d).collect(), b)
    });
    engine.register_fn("split_rev", move |s: &mut ImmutableString, d: &str| {
        parts(s.rsplit(d).count(), || s.rsplit(d).collect(), b)
    });
    engine.register_fn("split_rev", move |s: &mut ImmutableString, d: char| {
        parts(s.rsplit(d).count(), || s.rsplit(d).collect(), b)
    });
    engine.register_fn("split_rev", move |s: &mut ImmutableString, d: &str, n: INT| {
        parts(s.rsplitn(segments(n), d).count(), || s.rsplitn(segments(n), d).collect(), b)
    });
    engine.register_fn("split_rev", move |s: &mut ImmutableString, d: char, n: INT| {
        parts(s.rsplitn(segments(n), d).count(), || s.rsplitn(segments(n), d).collect(), b)
    });

    // Waiting is not transforming: the deadline is not looked at while asleep.
    engine.register_fn("sleep", |_: INT| -> Res<()> { Err("sleep is not available in transforms".into()) });
    engine.register_fn("sleep", |_: rhai::FLOAT| -> Res<()> { Err("sleep is not available in transforms".into()) });
    engine
}
