// Placeholder: being written.
export default function TracePage() {
  return <p className="empty">TracePage</p>;
}
