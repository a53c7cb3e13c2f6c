//! An inference server: one LeNet-5, with the weights embedded in its code
//! at build time, shared by several worker threads through an `Arc`, with
//! no lock around inference, answering on a loopback TCP socket.
//!
//! A request is a line of 784 numbers (a 28x28 image, row by row,
//! separated by spaces or commas); the answer is a line holding the class
//! and the ten logits, or `error: ...`.
//!
//! `cargo run --release --bin serve -- [--threads N] [--port P]` serves
//! until stopped. `--self-test` serves on a free port, sends digits from
//! four client threads at once, and checks every answer against the
//! model's own `forward`, bit for bit.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};

use netc_examples::lenet5::LeNet5;
use netc_examples::{argmax, digits};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map_or(Ok(default), |v| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}")))
    };
    let run = || -> Result<(), String> {
        let (threads, port) = (value("--threads", 4)?.max(1), value("--port", 7878)?);
        let model = Arc::new(LeNet5::embedded().map_err(|e| e.to_string())?);
        let self_test = args.iter().any(|a| a == "--self-test");
        let port = if self_test { 0 } else { port };
        let listener = TcpListener::bind(("127.0.0.1", port as u16)).map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        println!("serving LeNet-5 on {address} with {threads} threads");
        start_workers(listener, threads, Arc::clone(&model));
        if self_test {
            self_test_clients(address, &model)
        } else {
            loop {
                std::thread::park();
            }
        }
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Accepts connections and hands each to one of `threads` workers, which
/// share the model.
fn start_workers(listener: TcpListener, threads: usize, model: Arc<LeNet5>) {
    let (send, receive) = mpsc::channel::<TcpStream>();
    // The lock is held only to take the next connection, never while a
    // worker runs the model.
    let receive = Arc::new(Mutex::new(receive));
    for _ in 0..threads {
        let (receive, model) = (Arc::clone(&receive), Arc::clone(&model));
        std::thread::spawn(move || loop {
            let next = receive.lock().map(|r| r.recv());
            let Ok(Ok(stream)) = next else { return };
            if let Err(e) = answer(stream, &model) {
                eprintln!("a connection failed: {e}");
            }
        });
    }
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if send.send(stream).is_err() {
                return;
            }
        }
    });
}

/// Answers each line of a connection until the client closes it.
fn answer(stream: TcpStream, model: &LeNet5) -> std::io::Result<()> {
    // One short line each way: sent at once, not held back to be merged.
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    for line in BufReader::new(stream).lines() {
        let reply = match parse_image(&line?) {
            Ok(image) => {
                let mut logits = [[0.0f32; 10]];
                match model.forward(&[image], &mut logits) {
                    Ok(()) => format_answer(&logits[0]),
                    Err(e) => format!("error: {e}"),
                }
            }
            Err(e) => format!("error: {e}"),
        };
        writeln!(writer, "{reply}")?;
    }
    Ok(())
}

fn parse_image(line: &str) -> Result<[f32; 784], String> {
    let values: Vec<f32> = line
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<f32>().map_err(|_| format!("`{v}` is not a number")))
        .collect::<Result<_, _>>()?;
    values.try_into().map_err(|v: Vec<f32>| format!("{} numbers, expected 784", v.len()))
}

/// The class, then the logits, each printed so that it parses back to the
/// same bits.
fn format_answer(logits: &[f32; 10]) -> String {
    let printed: Vec<String> = logits.iter().map(f32::to_string).collect();
    format!("{} {}", argmax(logits), printed.join(" "))
}

/// Four clients at once, each sending its own digits over its own
/// connection and comparing every answer with `forward` on this side.
fn self_test_clients(address: std::net::SocketAddr, model: &Arc<LeNet5>) -> Result<(), String> {
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let model = Arc::clone(model);
            std::thread::spawn(move || -> Result<usize, String> {
                let stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
                let mut lines = BufReader::new(stream).lines();
                let (images, _) = digits(50, 10, 100 + client);
                for image in &images {
                    let request: Vec<String> = image.iter().map(f32::to_string).collect();
                    writeln!(writer, "{}", request.join(" ")).map_err(|e| e.to_string())?;
                    let reply =
                        lines.next().ok_or("the server closed")?.map_err(|e| e.to_string())?;
                    let mut want = [[0.0f32; 10]];
                    model
                        .forward(std::slice::from_ref(image), &mut want)
                        .map_err(|e| e.to_string())?;
                    if reply != format_answer(&want[0]) {
                        return Err(format!(
                            "client {client}: `{reply}` is not `forward`'s answer"
                        ));
                    }
                }
                Ok(images.len())
            })
        })
        .collect();
    let mut answers = 0;
    for client in clients {
        answers += client.join().map_err(|_| "a client panicked".to_string())??;
    }
    println!("self-test: {answers} answers to 4 clients at once, each bit for bit `forward`'s");
    Ok(())
}
