//! A training step allocates nothing: after the first step (which sizes the
//! optimizer state), steps make zero heap allocations, on every thread; nor
//! does inference once warm.
//!
//! The loop runs inside the rayon pool, as `netc train` does. Called from a
//! thread outside the pool, each parallel kernel is injected into the pool's
//! queue, and rayon's injector allocates a 1.5 KB block every ~60 jobs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts allocations on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

use netc_tests::nets::lenet5;
use netc_tests::nets::resnet20;

/// On a pool of one thread, inference allocates nothing once its thread's
/// buffers have grown to the batch and the convs' weights are prepared in
/// the forms the batches pick (batch 1 packs them): a smaller batch, or the
/// same one again, reuses them.
fn one_thread_inference_allocates_nothing() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    pool.install(|| {
        let x: Vec<[f32; 784]> =
            (0..32).map(|s| std::array::from_fn(|i| ((i + s) % 13) as f32 / 13.0)).collect();
        let model = lenet5::LeNet5::with_capacity(1, 32);
        let mut out = vec![[0.0f32; 10]; 32];
        model.forward(&x, &mut out).expect("warm-up forward");
        model.forward(&x[..1], &mut out[..1]).expect("warm-up forward");
        for n in [32, 1, 7] {
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            model.forward(&x[..n], &mut out[..n]).expect("forward");
            let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
            assert_eq!(
                during, 0,
                "LeNet-5's forward at batch {n} on one thread allocated {during} times"
            );
        }
    });
}

/// One test, not several: the allocation counter is global, and tests run
/// in parallel.
#[test]
fn training_steps_allocate_nothing() {
    let pool = rayon::ThreadPoolBuilder::new().build().expect("pool");
    pool.install(steps_allocate_nothing);
    one_thread_inference_allocates_nothing();
}

fn steps_allocate_nothing() {
    let x: Vec<[f32; 784]> =
        (0..32).map(|s| std::array::from_fn(|i| ((i + s) % 13) as f32 / 13.0)).collect();
    let labels: Vec<u32> = (0..32).map(|i| i % 10).collect();
    let mut model = lenet5::LeNet5::with_capacity(1, 32);
    let opt = lenet5::LeNet5::default_optimizer().expect("optimizer");
    for _ in 0..2 {
        model.train_step(&x, &labels, &opt).expect("warm-up step");
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..3 {
        model.train_step(&x, &labels, &opt).expect("step");
    }
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(during, 0, "LeNet-5 training steps allocated {during} times");

    // A network with batch norm, residual adds and more layers.
    let x: Vec<[f32; 3072]> =
        (0..8).map(|s| std::array::from_fn(|i| ((i * 7 + s) % 11) as f32 / 11.0)).collect();
    let labels: Vec<u32> = (0..8).collect();
    let mut model = resnet20::ResNet20::with_capacity(1, 8);
    let opt = resnet20::ResNet20::default_optimizer().expect("optimizer");
    for _ in 0..2 {
        model.train_step(&x, &labels, &opt).expect("warm-up step");
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    model.train_step(&x, &labels, &opt).expect("step");
    let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(during, 0, "ResNet-20 training step allocated {during} times");

    // Inference, at batch 1 and at the capacity, once warm.
    for n in [1, 8] {
        let mut out = vec![[0.0f32; 10]; n];
        model.forward(&x[..n], &mut out).expect("warm-up forward");
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        model.forward(&x[..n], &mut out).expect("forward");
        let during = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(during, 0, "ResNet-20 forward at batch {n} allocated {during} times");
    }
}
