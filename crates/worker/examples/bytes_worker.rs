//! An example comrade pool worker that takes and returns binary data (protocol version 3
//! attachments), and the fixture of the JS tests of that (`__test__/pool.binary-rust.test.mjs`).
//!
//! ```text
//! cargo build --release -p comrade-worker --examples
//! ```
//!
//! then from JavaScript:
//!
//! ```js
//! const pool = new Pool({ command: ['target/release/examples/bytes_worker'] });
//! await pool.call('digest', Buffer.from('abc')); // { len: 3, sum: 294 }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use comrade_worker::{serde_bytes, ByteBuf, Ctx, Error, Worker};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Any JSON value, or bytes, at any depth: what a JS caller may send. It reads whatever the
/// arguments hold (`deserialize_any`): the crate hands `{"$b":i}` to the visitor as bytes.
#[derive(Serialize)]
#[serde(untagged)]
enum Tree {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<Tree>),
    Object(BTreeMap<String, Tree>),
    Bytes(ByteBuf),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value or bytes")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Number(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Text(v.to_owned()))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Tree, E> {
        // The one copy: from the worker's read buffer into the value.
        Ok(Tree::Bytes(ByteBuf::from(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut list = Vec::new();
        while let Some(item) = seq.next_element()? {
            list.push(item);
        }
        Ok(Tree::List(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut object = BTreeMap::new();
        while let Some((k, v)) = map.next_entry()? {
            object.insert(k, v);
        }
        Ok(Tree::Object(object))
    }
}

/// A typed message: `body` is a `Vec<u8>` read and written as bytes through `serde_bytes`.
#[derive(Deserialize, Serialize)]
struct Packet {
    name: String,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    chunks: Vec<ByteBuf>,
}

#[derive(Serialize)]
struct Digest {
    len: usize,
    sum: u64,
}

fn digest(b: &[u8]) -> Digest {
    Digest {
        len: b.len(),
        sum: b.iter().map(|&x| u64::from(x)).sum(),
    }
}

/// Writes `bytes` on the channel as they are, behind the crate's back: a worker that breaks
/// the framing, for the pool's tests.
fn write_raw(bytes: &[u8]) {
    // SAFETY: descriptor 3 is the channel the crate serves; ManuallyDrop leaves it open.
    let mut channel = ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(3) });
    let _ = channel.write_all(bytes);
}

fn main() {
    Worker::new()
        // pool.run(x) → x: bytes anywhere in x come back as bytes.
        .default_function(|args: Vec<Tree>| Ok::<_, Error>(args.into_iter().next()))
        // pool.call('echo', buf) → buf (the benchmark's echo: bench/binary.js).
        .function("echo", |(b,): (ByteBuf,)| Ok::<_, Error>(b))
        .function("digest", |(b,): (ByteBuf,)| Ok::<_, Error>(digest(&b)))
        .function("packet", |(p,): (Packet,)| {
            let mut body = p.body;
            body.reverse();
            Ok::<_, Error>(Packet {
                name: p.name.to_uppercase(),
                body,
                chunks: p.chunks,
            })
        })
        // `n` bytes of `fill`, with an empty buffer beside them.
        .function("make", |(n, fill): (usize, u8)| {
            Ok::<_, Error>((ByteBuf::from(vec![fill; n]), ByteBuf::new()))
        })
        // Declares an attachment of `declared` bytes and sends `sent`. With `then_exit` the
        // worker exits at once; otherwise it goes on, so its next bytes break the framing.
        .function_ctx(
            "lie",
            |ctx: &mut Ctx, (declared, sent, then_exit): (u64, usize, bool)| -> Result<(), Error> {
                let id = ctx.id();
                let mut frame =
                    format!("{{\"b\":[{declared}],\"t\":\"ok\",\"id\":{id},\"v\":{{\"$b\":0}}}}\n")
                        .into_bytes();
                frame.resize(frame.len() + sent, b'x');
                write_raw(&frame);
                if then_exit {
                    std::process::exit(0);
                }
                write_raw(b"{\"t\":\"event\",\"name\":\"after\",\"data\":null}\n");
                Ok(())
            },
        )
        .function("pid", |(): ()| Ok::<_, Error>(std::process::id()))
        .run();
}
