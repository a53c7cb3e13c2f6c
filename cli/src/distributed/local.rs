//! Ranks as threads of one process, talking through channels: the same
//! data-parallel training as MPI ranks, for a single machine without MPI
//! and as the reference the MPI runs are checked against.

use super::Group;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;

/// What one rank sends another.
enum Message {
    Floats(Vec<f32>),
    Words(Vec<u64>),
}

/// One rank's ends of the channels: a sender to every rank and a receiver
/// from every rank. Dropping it (its thread is done) makes every peer's
/// next receive from it an error, so no rank waits for a stopped one.
struct Local {
    rank: usize,
    to: Vec<Sender<Message>>,
    from: Vec<Mutex<Receiver<Message>>>,
}

impl Local {
    fn send(&self, to: usize, message: Message) -> Result<(), String> {
        self.to[to].send(message).map_err(|_| format!("rank {to} stopped"))
    }

    fn receive(&self, from: usize) -> Result<Message, String> {
        let receiver = self.from[from].lock().map_err(|_| format!("rank {from} stopped"))?;
        receiver.recv().map_err(|_| format!("rank {from} stopped"))
    }
}

impl Group for Local {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.to.len()
    }

    fn exchange(
        &self,
        send: &[f32],
        to: usize,
        recv: &mut [f32],
        from: usize,
    ) -> Result<(), String> {
        // The channels never block a sender, so sending first cannot
        // deadlock.
        self.send(to, Message::Floats(send.to_vec()))?;
        match self.receive(from)? {
            Message::Floats(values) if values.len() == recv.len() => {
                recv.copy_from_slice(&values);
                Ok(())
            }
            _ => Err(format!("rank {from} sent rank {} an unexpected message", self.rank)),
        }
    }

    fn gather(&self, values: &[u64]) -> Result<Vec<u64>, String> {
        for peer in (0..self.size()).filter(|&p| p != self.rank) {
            self.send(peer, Message::Words(values.to_vec()))?;
        }
        let mut all = Vec::with_capacity(values.len() * self.size());
        for peer in 0..self.size() {
            if peer == self.rank {
                all.extend_from_slice(values);
                continue;
            }
            match self.receive(peer)? {
                Message::Words(words) if words.len() == values.len() => all.extend(words),
                _ => {
                    return Err(format!(
                        "rank {peer} sent rank {} an unexpected message",
                        self.rank
                    ))
                }
            }
        }
        Ok(all)
    }
}

/// Runs `body` as each of `size` ranks, each on a thread of its own, and
/// returns what each returned, by rank.
pub fn run_local<T: Send>(
    size: usize,
    body: impl Fn(&dyn Group) -> T + Sync,
) -> Result<Vec<T>, String> {
    let size = size.max(1);
    // channels[a][b] carries a's messages to b.
    let mut senders: Vec<Vec<Sender<Message>>> = (0..size).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<Mutex<Receiver<Message>>>> = (0..size).map(|_| Vec::new()).collect();
    for to_each in &mut senders {
        for from_this in &mut receivers {
            let (tx, rx) = channel();
            to_each.push(tx);
            from_this.push(Mutex::new(rx));
        }
    }
    let ranks: Vec<Local> = senders
        .into_iter()
        .zip(receivers)
        .enumerate()
        .map(|(rank, (to, from))| Local { rank, to, from })
        .collect();
    std::thread::scope(|scope| {
        let body = &body;
        // A rank whose thread cannot start is dropped: the others then
        // stop at their first exchange with it.
        let threads: Vec<_> = ranks
            .into_iter()
            .map(|rank| {
                std::thread::Builder::new()
                    .name(format!("netc-rank-{}", rank.rank))
                    .spawn_scoped(scope, move || body(&rank))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                let t = t.map_err(|e| format!("cannot start a thread for a rank: {e}"))?;
                Ok(t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            })
            .collect()
    })
}
