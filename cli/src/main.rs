fn main() {
    println!("{}", enseal_shared::version());
}
