//! Placeholder, replaced by the CAS-write benchmark in the next commit.

fn main() {
    println!("postgres cas writes: benchmark not written yet");
}
