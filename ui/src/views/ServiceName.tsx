import { serviceColor } from '../model/colors';

/** A service name behind its colour dot, as every view shows services. */
export default function ServiceName({ name }: { name: string }) {
  return (
    <span className="service-name">
      <span className="service-dot" style={{ background: serviceColor(name) }} aria-hidden />
      {name}
    </span>
  );
}
