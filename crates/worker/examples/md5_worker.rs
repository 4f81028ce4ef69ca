//! An example comrade pool worker, and the one the benchmarks and integration tests use.
//!
//! ```text
//! cargo build --release -p comrade-worker --examples
//! ```
//!
//! then from JavaScript: `new Pool({ command: ['target/release/examples/md5_worker'] })`.

use comrade_worker::{Ctx, Error, Worker};
use md5::{Digest, Md5};
use serde_json::Value;

fn md5_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(data);
    let mut hex = String::with_capacity(32);
    for b in digest {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 15)] as char);
    }
    hex
}

fn main() {
    // Broadcasts (`pool.broadcast(message)`) this worker got, for `messages`.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Value>::new()));
    let kept = seen.clone();
    Worker::new()
        // A broadcast message is kept; `{"fail": "why"}` makes the handler fail.
        .on_message(move |message: Value| {
            if let Some(why) = message.get("fail").and_then(Value::as_str) {
                return Err(Error::new(why).code("E_MESSAGE"));
            }
            kept.borrow_mut().push(message);
            Ok(())
        })
        .function("messages", move |(): ()| {
            Ok::<_, Error>(seen.borrow().clone())
        })
        // initData `{"fail": "why"}` makes init fail, to exercise the pool's startup-failure path.
        .init(
            |data: Value| match data.get("fail").and_then(Value::as_str) {
                Some(why) => Err(Error::new(why).code("E_INIT")),
                None => Ok(()),
            },
        )
        // pool.run(x) → x
        .default_function(|args: Vec<Value>| Ok::<_, Error>(args.into_iter().next()))
        // The luafan benchmark workload: the payload comes back with its digest.
        .function("md5", |(payload,): (String,)| {
            let digest = md5_hex(payload.as_bytes());
            Ok::<_, Error>((payload, digest))
        })
        .function("add", |(a, b): (f64, f64)| Ok::<_, Error>(a + b))
        .function("fail", |(message,): (String,)| {
            Err::<(), _>(
                Error::new(message)
                    .name("RangeError")
                    .code("E_FAIL")
                    .field("detail", 42),
            )
        })
        .function("panic", |args: Vec<Value>| -> Result<(), Error> {
            match args.first().and_then(Value::as_str) {
                Some(message) => panic!("{message}"),
                None => panic!("asked to panic"),
            }
        })
        .function_ctx("progress", |ctx: &mut Ctx, (n,): (u32,)| {
            for i in 1..=n {
                ctx.progress(i)?;
            }
            Ok::<_, Error>(n)
        })
        .function_ctx("emit", |ctx: &mut Ctx, (name, data): (String, Value)| {
            ctx.emit(&name, data)?;
            Ok::<_, Error>(())
        })
        .function_ctx("retire", |ctx: &mut Ctx, (): ()| {
            ctx.retire()?;
            Ok::<_, Error>(std::process::id())
        })
        // The caller's W3C traceparent, when its call carries one (null otherwise).
        // Any arguments (binaries too) are ignored.
        .function_ctx(
            "traceparent",
            |ctx: &mut Ctx, _: Vec<serde::de::IgnoredAny>| {
                Ok::<_, Error>(ctx.traceparent().map(str::to_owned))
            },
        )
        .function("pid", |(): ()| Ok::<_, Error>(std::process::id()))
        .function("sleep_ms", |(ms,): (u64,)| {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok::<_, Error>(ms)
        })
        .run();
}
