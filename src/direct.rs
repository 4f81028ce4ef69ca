//! Direct reads: the JS thread watches the worker channels itself (libuv polls on duplicates
//! of their descriptors) and the engine's I/O thread stops watching them. A reply then wakes
//! only the JS thread, which reads it and hands the records to JS in the same callback, as
//! Node's own IPC does, instead of waking the I/O thread and then the JS thread. When the JS
//! thread is too busy to read while jobs are queued, the engine's I/O thread takes the reads
//! back, so that a worker gets its next job whatever the JS thread is doing; the JS thread
//! reads again a little later. With one job per worker, only under light load (see
//! `comrade_core::direct_policy`).
//!
//! # Safety
//!
//! Everything here runs on the JS thread: `Direct` lives in the pool object, and libuv calls
//! the poll callbacks on the loop of the env that made them. A watched channel is a [`Poll`] on
//! the heap whose libuv handle is its first field (`#[repr(C)]`), so the handle pointer libuv
//! passes back is a pointer to the `Poll`. [`PollHandle`] owns that allocation: dropping it
//! stops and closes the handle, and libuv frees the `Poll` in the close callback
//! (`on_closed`), which it calls exactly once, in a later turn of the loop. So a poll closed
//! from inside its own `on_readable` (its call into JS drains the pool, which syncs `Direct`,
//! which may drop the poll's `PollHandle`) stays allocated until that callback has returned.
//! References to a `Poll` last one call and are never held across a call into JS.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::time::Instant;

use comrade_core::direct_policy;
use comrade_core::engine::Engine;
use comrade_core::scheduler::WorkerId;
use napi::sys;

const UV_POLL: c_int = 8;
const UV_READABLE: c_int = 1;
/// Room for a `uv_poll_t`; checked against libuv's own size at start.
const POLL_WORDS: usize = 64;

extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init(lp: *mut sys::uv_loop_s, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(
        handle: *mut c_void,
        events: c_int,
        cb: unsafe extern "C" fn(*mut c_void, c_int, c_int),
    ) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: unsafe extern "C" fn(*mut c_void));
    fn uv_unref(handle: *mut c_void);
}

/// One watched channel. `handle` comes first, so a pointer to the handle is a pointer to this.
#[repr(C)]
struct Poll {
    handle: [u64; POLL_WORDS],
    engine: Engine,
    worker: WorkerId,
    /// The duplicate descriptor the poll watches; closed with the poll.
    fd: OwnedFd,
    /// What `on_readable` needs to call the pool's drain.
    js: JsCallback,
    active: bool,
    /// The channel reached its end: never watched again.
    closed: bool,
}

/// The pool's drain, as the polls call it.
#[derive(Clone, Copy)]
struct JsCallback {
    env: sys::napi_env,
    callback: sys::napi_ref,
    async_context: sys::napi_async_context,
}

impl Poll {
    fn uv(&mut self) -> *mut c_void {
        self.handle.as_mut_ptr().cast()
    }

    fn set_active(&mut self, on: bool) {
        if self.active == on || (on && self.closed) {
            return;
        }
        self.active = on;
        // SAFETY: an initialized poll handle, on its loop's thread (module Safety).
        unsafe {
            if on {
                uv_poll_start(self.uv(), UV_READABLE, on_readable);
            } else {
                uv_poll_stop(self.uv());
            }
        }
    }

    /// Stops a poll whose channel is finished; it is never started again.
    fn stop_for_good(&mut self) {
        self.set_active(false);
        self.closed = true;
    }
}

/// Owns one [`Poll`]: made by `open`, closed (and later freed by libuv) on drop.
struct PollHandle(NonNull<Poll>);

impl PollHandle {
    /// Watches `fd` on `uv_loop`, stopped, and without keeping the loop alive. None if libuv
    /// refuses the descriptor.
    fn open(
        uv_loop: *mut sys::uv_loop_s,
        engine: &Engine,
        worker: WorkerId,
        fd: OwnedFd,
        js: JsCallback,
    ) -> Option<PollHandle> {
        let raw = fd.as_raw_fd();
        let p = Box::into_raw(Box::new(Poll {
            handle: [0; POLL_WORDS],
            engine: engine.clone(),
            worker,
            fd,
            js,
            active: false,
            closed: false,
        }));
        // SAFETY: `p` is a fresh allocation; the loop is the env's own, and this is its thread.
        // Once initialized, the handle is freed through uv_close only (PollHandle's drop).
        unsafe {
            if uv_poll_init(uv_loop, p.cast(), raw) != 0 {
                drop(Box::from_raw(p));
                return None;
            }
            // The polls never keep Node alive; pending jobs do that (through the wake).
            uv_unref(p.cast());
            Some(PollHandle(NonNull::new_unchecked(p)))
        }
    }

    fn set_active(&mut self, on: bool) {
        // SAFETY: the Poll lives until our drop; no other reference to it is alive (module
        // Safety).
        unsafe { self.0.as_mut() }.set_active(on);
    }
}

impl Drop for PollHandle {
    fn drop(&mut self) {
        let p = self.0.as_ptr();
        // SAFETY: as in `set_active`; after uv_close, libuv calls `on_closed` once, which frees
        // the Poll, and nothing else uses this pointer again.
        unsafe {
            (*p).set_active(false);
            uv_close(p.cast(), on_closed);
        }
    }
}

pub struct Direct {
    uv_loop: *mut sys::uv_loop_s,
    /// Holds the pool's drain strongly (a napi reference of count 1), and the drain reaches the
    /// pool object that owns this: the pool drops its `Direct` once it is done (`release`), or
    /// it could never be garbage-collected.
    js: JsCallback,
    polls: HashMap<WorkerId, PollHandle>,
    generation: u64,
    active: bool,
    /// A channel could not be watched: the I/O thread reads everything from then on.
    failed: bool,
    /// When direct reads last stopped.
    stopped_at: Option<Instant>,
}

impl Direct {
    /// `callback` is the JS function that takes the records (the pool's drain). None when
    /// libuv cannot be reached as expected; the pool then works through its I/O thread only.
    pub fn new(env: sys::napi_env, callback: sys::napi_value) -> Option<Direct> {
        // SAFETY: plain N-API calls on the JS thread with a live env and value.
        unsafe {
            if uv_handle_size(UV_POLL) > POLL_WORDS * 8 {
                return None;
            }
            let mut uv_loop = ptr::null_mut();
            if sys::napi_get_uv_event_loop(env, &mut uv_loop) != sys::Status::napi_ok
                || uv_loop.is_null()
            {
                return None;
            }
            let mut reference = ptr::null_mut();
            if sys::napi_create_reference(env, callback, 1, &mut reference) != sys::Status::napi_ok
            {
                return None;
            }
            let mut name = ptr::null_mut();
            let label = "comrade.direct";
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            );
            let mut async_context = ptr::null_mut();
            if sys::napi_async_init(env, ptr::null_mut(), name, &mut async_context)
                != sys::Status::napi_ok
            {
                sys::napi_delete_reference(env, reference);
                return None;
            }
            Some(Direct {
                uv_loop,
                js: JsCallback {
                    env,
                    callback: reference,
                    async_context,
                },
                polls: HashMap::new(),
                generation: u64::MAX,
                active: false,
                failed: false,
                stopped_at: None,
            })
        }
    }

    /// Brings the polls in line with the engine: one per open channel, running while
    /// `direct_policy` wants direct reads. Called on the JS thread whenever JS talks to the
    /// engine.
    pub fn sync(&mut self, engine: &Engine) {
        let generation = engine.channels_generation();
        if generation != self.generation {
            self.generation = generation;
            let known: HashSet<WorkerId> = self.polls.keys().copied().collect();
            let (live, fresh) = engine.channels(&known);
            let live: HashSet<WorkerId> = live.into_iter().collect();
            self.polls.retain(|w, _| live.contains(w));
            for (w, fd) in fresh {
                match PollHandle::open(self.uv_loop, engine, w, fd, self.js) {
                    Some(mut p) => {
                        p.set_active(self.active);
                        self.polls.insert(w, p);
                    }
                    // A channel nobody watches would never be read in direct mode.
                    None => self.failed = true,
                }
            }
        }
        let now = Instant::now();
        if self.active && engine.direct_revoked() {
            // The I/O thread took the reads back while this thread was busy.
            self.active = false;
            for p in self.polls.values_mut() {
                p.set_active(false);
            }
            self.stopped_at = Some(now);
        }
        let want = !self.failed
            && direct_policy::wanted(engine.direct_load(), self.active, self.stopped_at, now);
        if want != self.active {
            self.active = want;
            // Both orders are safe: a registration reports data that is already waiting, and
            // a libuv poll fires for as long as some is.
            if want {
                for p in self.polls.values_mut() {
                    p.set_active(true);
                }
                engine.set_direct(true);
            } else {
                engine.set_direct(false);
                for p in self.polls.values_mut() {
                    p.set_active(false);
                }
                self.stopped_at = Some(now);
            }
        }
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        // Closes every poll first: none can call the drain after this.
        self.polls.clear();
        // SAFETY: the env outlives the pool object being finalized; the polls that used these
        // are closed, so no callback can use them any more.
        unsafe {
            sys::napi_async_destroy(self.js.env, self.js.async_context);
            sys::napi_delete_reference(self.js.env, self.js.callback);
        }
    }
}

unsafe extern "C" fn on_closed(handle: *mut c_void) {
    // SAFETY: the handle is the first field of a Poll made by Box::into_raw in
    // `PollHandle::open`; this is its last use. Dropping it closes the duplicate descriptor.
    drop(unsafe { Box::from_raw(handle.cast::<Poll>()) });
}

unsafe extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    let js = {
        // SAFETY: libuv passes back the handle of a live Poll (first field), on the JS thread;
        // this reference ends before the call into JS (module Safety).
        let p = unsafe { &mut *handle.cast::<Poll>() };
        if status < 0 {
            p.stop_for_good();
            return;
        }
        let (records, open) = p.engine.read_direct(p.worker);
        if !open {
            // The end of the stream stays readable: stop, or this would fire until the
            // worker is reaped.
            p.stop_for_good();
        }
        if !records {
            return;
        }
        p.js
    };
    // SAFETY: on the JS thread, inside a libuv callback; the env and references live as long
    // as `Direct`, which closes its polls before releasing them.
    unsafe { call_js(js) };
}

/// Calls the pool's drain as Node calls any I/O callback: in its own scope, with microtasks and
/// `process.nextTick` callbacks run after it, and an exception reported as uncaught.
unsafe fn call_js(js: JsCallback) {
    let JsCallback {
        env,
        callback,
        async_context: ctx,
    } = js;
    // SAFETY: on the JS thread, inside a libuv callback, with the pool's live env.
    unsafe {
        let mut scope = ptr::null_mut();
        if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
            return;
        }
        let mut func = ptr::null_mut();
        let mut recv = ptr::null_mut();
        if sys::napi_get_reference_value(env, callback, &mut func) == sys::Status::napi_ok
            && !func.is_null()
            && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok
        {
            let mut result = ptr::null_mut();
            let status = sys::napi_make_callback(env, ctx, recv, func, 0, ptr::null(), &mut result);
            if status == sys::Status::napi_pending_exception {
                let mut err = ptr::null_mut();
                if sys::napi_get_and_clear_last_exception(env, &mut err) == sys::Status::napi_ok {
                    sys::napi_fatal_exception(env, err);
                }
            }
        }
        sys::napi_close_handle_scope(env, scope);
    }
}
