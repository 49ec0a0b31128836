// A page that fails to render says so, in place, and the rest of the UI keeps working.
import { Component, type ReactNode } from 'react';

export class ErrorBoundary extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    if (this.state.error)
      return (
        <p role="alert" className="error">
          This page failed: {this.state.error.message}
        </p>
      );
    return this.props.children;
  }
}
