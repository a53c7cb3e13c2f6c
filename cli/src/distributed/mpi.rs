//! Ranks as MPI processes (`mpirun -np N netc train …`), through rsmpi.
//! MPI's own errors abort the job, and so does an error on any one rank
//! (see [`abort`]): a rank that stopped alone would leave the others
//! waiting for it forever.

use super::Group;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

/// This process's place in `MPI_COMM_WORLD`. It holds no MPI handle, so
/// the trainer can take it to the threads of its pool; only one of them
/// talks to MPI at a time.
#[derive(Debug)]
pub struct Mpi {
    rank: usize,
    size: usize,
}

/// Joins the MPI job; `None` if MPI cannot start. MPI stays up while the
/// returned universe lives.
pub fn init() -> Option<(Universe, Mpi)> {
    let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)?;
    let world = universe.world();
    let group = Mpi { rank: world.rank() as usize, size: world.size() as usize };
    Some((universe, group))
}

/// Ranks on this machine, as the launcher tells them, for the default
/// threads per rank.
pub fn ranks_on_this_machine() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
        .unwrap_or(1)
}

/// Waits until every rank is here.
pub fn barrier() {
    SimpleCommunicator::world().barrier();
}

/// Ends the whole job: the launcher stops every rank.
pub fn abort() -> ! {
    SimpleCommunicator::world().abort(1)
}

impl Group for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn exchange(
        &self,
        send: &[f32],
        to: usize,
        recv: &mut [f32],
        from: usize,
    ) -> Result<(), String> {
        let world = SimpleCommunicator::world();
        let (to, from) = (world.process_at_rank(to as i32), world.process_at_rank(from as i32));
        mpi::point_to_point::send_receive_into(send, &to, recv, &from);
        Ok(())
    }

    fn gather(&self, values: &[u64]) -> Result<Vec<u64>, String> {
        let mut all = vec![0u64; values.len() * self.size];
        SimpleCommunicator::world().all_gather_into(values, &mut all[..]);
        Ok(all)
    }
}
