// Placeholder: being written.
export default function ServiceGraphPage() {
  return <p className="empty">ServiceGraphPage</p>;
}
