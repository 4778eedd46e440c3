// Placeholder: being written.
export default function ComparePage() {
  return <p className="empty">ComparePage</p>;
}
